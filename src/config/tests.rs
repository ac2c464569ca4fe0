//! The configuration's loading, defaults and checks.

use super::*;

fn env(vars: &[(&str, &str)]) -> Vec<(String, String)> {
    vars.iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn load_err(text: &str, vars: &[(&str, &str)]) -> String {
    match Config::load_from(Some(text), env(vars)) {
        Ok(_) => panic!("expected an error for {text:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn defaults_without_file() {
    let (config, warnings) = Config::load_from(None, env(&[])).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(config.server_name.as_str(), "localhost");
    assert_eq!(config.database_path, PathBuf::from("./conclave-data"));
    assert_eq!(config.listen_addr().to_string(), "127.0.0.1:8008");
    assert_eq!(config.max_request_size, 20 * 1024 * 1024);
    assert!(!config.allow_registration && !config.allow_federation);
    assert_eq!(config.registration_rate_limit.burst, 3);
}

#[test]
fn file_and_env_override() {
    let text = r#"
        [global]
        server_name = "example.com"
        port = 6167
        allow_registration = false

        [global.well_known]
        server = "matrix.example.com:443"
    "#;
    let vars = env(&[
        ("CONCLAVE_PORT", "9000"),
        ("conclave_allow_registration", "true"),
        ("CONCLAVE_WELL_KNOWN__CLIENT", "https://x"),
        ("CONCLAVE_TRUSTED_SERVERS", r#"["matrix.org"]"#),
        ("CONCLAVE_REGISTRATION_TOKEN", "12345"),
        ("CONCLAVE_LOGIN_RATE_LIMIT__BURST", "10"),
        ("CONCLAVE_ADDRESS", "0.0.0.0"),
        ("CONCLAVE_CONFIG", "/does/not/matter.toml"),
        ("HOME", "/root"),
    ]);
    let (config, warnings) = Config::load_from(Some(text), vars).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(config.server_name.as_str(), "example.com");
    assert_eq!(config.database_path, PathBuf::from("./conclave-data"));
    assert_eq!(config.listen_addr().to_string(), "0.0.0.0:9000");
    assert!(config.allow_registration);
    assert_eq!(config.well_known.client.as_deref(), Some("https://x"));
    assert_eq!(
        config.well_known.server.as_deref(),
        Some("matrix.example.com:443")
    );
    assert_eq!(config.trusted_servers.len(), 1);
    // Numeric-looking values stay strings for string keys.
    assert_eq!(config.registration_token.as_deref(), Some("12345"));
    assert_eq!(config.login_rate_limit.burst, 10);
    assert_eq!(config.login_rate_limit.per_second, 0.2);
}

#[test]
fn unknown_keys_are_warned_not_fatal() {
    let text = r#"
        [global]
        foo_bar = 1
        registration_token = "abc"
        max_concurrent_requests = 100

        [global.well_known]
        bogus = "x"

        [elsewhere]
        a = 1
    "#;
    let (config, warnings) = Config::load_from(Some(text), env(&[("CONCLAVE_NOPE", "1")])).unwrap();
    assert_eq!(config.registration_token.as_deref(), Some("abc"));
    let all = warnings.join("\n");
    assert!(
        all.contains("unknown configuration key global.foo_bar (ignored)"),
        "{all}"
    );
    assert!(all.contains("global.well_known.bogus"), "{all}");
    assert!(all.contains("global.max_concurrent_requests"), "{all}");
    assert!(all.contains("elsewhere"), "{all}");
    assert!(
        all.contains("global.nope") && all.contains("CONCLAVE_NOPE"),
        "{all}"
    );
    assert!(!all.contains("registration_token"), "{all}");
    assert_eq!(warnings.len(), 5, "{all}");
}

#[test]
fn turn_and_support_keys_load_and_secrets_are_masked() {
    let text = r#"
        [global]
        turn_uris = ["turn:turn.example.com:3478?transport=udp"]
        turn_ttl = 600

        [[global.well_known.support_contacts]]
        email_address = "it@example.com"
    "#;
    let (config, warnings) =
        Config::load_from(Some(text), env(&[("CONCLAVE_TURN_SECRET", "hush")])).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(config.turn.turn_uris.len(), 1);
    assert_eq!(config.turn.turn_ttl, 600);
    assert_eq!(config.turn.turn_secret.as_deref(), Some("hush"));
    assert_eq!(config.well_known.support_contacts[0].role, "m.role.admin");
    let shown = config.to_masked_toml();
    assert!(
        !shown.contains("hush") && shown.contains("turn_secret"),
        "{shown}"
    );
    // TURN addresses without credentials, or a contact without an address, are refused.
    let e = load_err("[global]\nturn_uris = [\"turn:t.example.com\"]", &[]);
    assert!(e.contains("turn_uris"), "{e}");
    let e = load_err(
        "[global]\n[[global.well_known.support_contacts]]\nrole = \"m.role.admin\"",
        &[],
    );
    assert!(e.contains("support_contacts"), "{e}");
}

#[test]
fn invalid_values_name_the_key() {
    let e = load_err("[global]\nport = \"abc\"", &[]);
    assert!(e.contains("global.port"), "{e}");
    let e = load_err("[global]\nport = 70000", &[]);
    assert!(e.contains("global.port"), "{e}");
    let e = load_err("[global]", &[("CONCLAVE_PORT", "abc")]);
    assert!(
        e.contains("global.port") && e.contains("CONCLAVE_PORT"),
        "{e}"
    );
    let e = load_err("[global]\nserver_name = \"not a name!\"", &[]);
    assert!(e.contains("global.server_name"), "{e}");
    let e = load_err("[global]\nmax_request_size = 100", &[]);
    assert!(e.contains("global.max_request_size"), "{e}");
    let e = load_err("[global]\ndb_cache_capacity_mb = 0", &[]);
    assert!(e.contains("global.db_cache_capacity_mb"), "{e}");
    let e = load_err("[global]\ndatabase_backend = \"sqlite\"", &[]);
    assert!(e.contains("global.database_backend"), "{e}");
    let e = load_err("[global]\nregistration_token = \"has space\"", &[]);
    assert!(e.contains("global.registration_token"), "{e}");
    assert!(!e.contains("has space"), "token echoed: {e}");
    let e = load_err("[global.well_known]\nclient = \"matrix.example.com\"", &[]);
    assert!(e.contains("global.well_known.client"), "{e}");
    let e = load_err(
        "[global.federation]\nip_range_allowlist = [\"10.0.0.0/99\"]",
        &[],
    );
    assert!(e.contains("global.federation.ip_range_allowlist"), "{e}");
    let e = load_err(
        "[global.federation]\nip_range_denylist = [\"intranet\"]",
        &[],
    );
    assert!(e.contains("global.federation.ip_range_denylist"), "{e}");
    let e = load_err("[global\nport = 1", &[]);
    assert!(e.contains("not valid TOML"), "{e}");
}

#[test]
fn masked_output_hides_the_token_and_round_trips() {
    let text = "[global]\nregistration_token = \"s3cret-token\"\nport = 9999";
    let (config, _) = Config::load_from(Some(text), env(&[])).unwrap();
    let masked = config.to_masked_toml();
    assert!(masked.contains("[global]"), "{masked}");
    assert!(masked.contains(REDACTED), "{masked}");
    assert!(!masked.contains("s3cret"), "{masked}");

    let (plain, _) = Config::load_from(Some("[global]\nport = 9999"), env(&[])).unwrap();
    let (reloaded, warnings) =
        Config::load_from(Some(plain.to_masked_toml().as_str()), env(&[])).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(reloaded.port, 9999);
}

#[test]
fn partial_nested_table_keeps_field_defaults() {
    let text = "[global.registration_rate_limit]\nburst = 10";
    let (config, _) = Config::load_from(Some(text), env(&[])).unwrap();
    assert_eq!(config.registration_rate_limit.burst, 10);
    assert_eq!(config.registration_rate_limit.per_second, 0.1);
}

#[test]
fn empty_env_value_unsets_optional_key() {
    let text = "[global]\nregistration_token = \"abc\"";
    let (config, _) =
        Config::load_from(Some(text), env(&[("CONCLAVE_REGISTRATION_TOKEN", "")])).unwrap();
    assert_eq!(config.registration_token, None);
}
