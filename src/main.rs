//! The `conclave` binary: load configuration, start the server, stop it cleanly on a signal.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use conclave::config::{Config, LogFormat};
use conclave::server::Server;
use tracing_subscriber::EnvFilter;

/// A Matrix homeserver for private, on-premise deployment.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// TOML configuration file (also CONCLAVE_CONFIG or CONDUIT_CONFIG). Without one, built-in
    /// defaults apply: server name `localhost`, 127.0.0.1:8008, data in ./conclave-data.
    #[arg(long, short, global = true)]
    config: Option<PathBuf>,

    /// Print the effective configuration (secrets masked) and exit.
    #[arg(long)]
    show_config: bool,

    /// Check a configuration file (and the files it names: application service registrations,
    /// TLS certificates) without starting; exits 0 when it is valid, 2 otherwise.
    #[arg(long, value_name = "FILE")]
    check_config: Option<PathBuf>,

    #[command(subcommand)]
    command: Option<CliCommand>,
}

#[derive(clap::Subcommand)]
enum CliCommand {
    /// Runs an admin command against the running server, as `!admin` does in the admin room
    /// (`conclave admin help`, `conclave admin users list`). Exits non-zero on failure.
    Admin {
        /// The console's socket (default: from the configuration, `admin.sock` in the
        /// database directory).
        #[arg(long)]
        socket: Option<PathBuf>,
        /// The command, e.g. `users create bob --admin`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
        words: Vec<String>,
    },
    /// Writes a consistent backup (database checkpoint and media) into a new directory: through
    /// the running server's console, or directly when the server is stopped.
    Backup {
        /// The console's socket (default: from the configuration).
        #[arg(long)]
        socket: Option<PathBuf>,
        /// A directory that does not exist yet.
        dir: PathBuf,
    },
    /// Restores a backup into the configured database and media directories, which must be
    /// empty or absent; the server must be stopped.
    Restore {
        /// A directory written by `conclave backup`.
        dir: PathBuf,
    },
}

/// `--check-config`: the configuration and the files it names, checked as a start would.
fn check_config(file: &std::path::Path) -> ExitCode {
    let (config, warnings) = match Config::load(Some(file)) {
        Ok(loaded) => loaded,
        Err(error) => {
            eprintln!("conclave: configuration error: {error}");
            return ExitCode::from(2);
        }
    };
    for warning in &warnings {
        eprintln!("conclave: warning: {warning}");
    }
    let mut failed = false;
    for path in &config.appservice_registration_files {
        let checked = std::fs::read_to_string(path)
            .map_err(|e| e.to_string())
            .and_then(|yaml| {
                conclave::service::appservice::Appservice::from_yaml(
                    &yaml,
                    &config.server_name,
                    conclave::service::appservice::Source::File(path.clone()),
                )
                .map(|_| ())
                .map_err(|e| e.message())
            });
        if let Err(error) = checked {
            eprintln!("conclave: {}: {error}", path.display());
            failed = true;
        }
    }
    for error in conclave::server::check_tls_files(&config) {
        eprintln!("conclave: {error}");
        failed = true;
    }
    if failed {
        return ExitCode::from(2);
    }
    println!("{}: the configuration is valid", file.display());
    ExitCode::SUCCESS
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(file) = &cli.check_config {
        return check_config(file);
    }
    let path = cli.config.or_else(|| {
        ["CONCLAVE_CONFIG", "CONDUIT_CONFIG"]
            .iter()
            .find_map(|name| {
                std::env::var_os(name)
                    .filter(|v| !v.is_empty())
                    .map(PathBuf::from)
            })
    });
    let (config, warnings) = match Config::load(path.as_deref()) {
        Ok(loaded) => loaded,
        Err(error) => {
            eprintln!("conclave: configuration error: {error}");
            return ExitCode::from(2);
        }
    };
    match cli.command {
        Some(CliCommand::Admin { socket, words }) => {
            let socket = socket.unwrap_or_else(|| config.admin_socket_path());
            return admin_console(&socket, words);
        }
        Some(CliCommand::Backup { socket, dir }) => {
            let socket = socket.unwrap_or_else(|| config.admin_socket_path());
            return backup(&config, &socket, &dir);
        }
        Some(CliCommand::Restore { dir }) => return restore(&config, &dir),
        None => {}
    }
    if cli.show_config {
        for warning in &warnings {
            eprintln!("conclave: warning: {warning}");
        }
        print!("{}", config.to_masked_toml());
        return ExitCode::SUCCESS;
    }

    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&config.log));
    let logs = tracing_subscriber::fmt().with_env_filter(filter);
    match config.log_format {
        LogFormat::Json => logs
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .init(),
        // Colour only on a terminal, so log files and journald get plain text.
        LogFormat::Text => logs
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
            .init(),
    }
    for warning in warnings {
        tracing::warn!("{warning}");
    }
    // A panic (in a request handler, answered with a 500 by the router, or in a background
    // task) goes to the log, inside the span it happened in, rather than only to stderr.
    std::panic::set_hook(Box::new(|info| tracing::error!(panic = %info, "panic")));

    return_large_allocations_to_the_system();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("conclave: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let mut server = match Server::start(config).await {
            Ok(server) => server,
            Err(error) => {
                tracing::error!("cannot start: {error}");
                eprintln!("conclave: cannot start: {error}");
                return ExitCode::FAILURE;
            }
        };
        let services = std::sync::Arc::clone(server.services());
        let failed = tokio::select! {
            () = shutdown_signal() => false,
            () = services.admin.stop_requested() => false,
            () = server.wait() => true,
        };
        if failed {
            return ExitCode::FAILURE;
        }
        tracing::info!("shutting down: finishing in-flight requests");
        server.shutdown().await;
        ExitCode::SUCCESS
    })
}

/// `conclave admin …`: sends the command to the server's console socket, prints the answer.
fn admin_console(socket: &std::path::Path, words: Vec<String>) -> ExitCode {
    match conclave::admin::console::call(socket, words) {
        Ok(reply) if reply.ok => {
            println!("{}", reply.text);
            ExitCode::SUCCESS
        }
        Ok(reply) => {
            eprintln!("{}", reply.text);
            ExitCode::FAILURE
        }
        Err(error) => {
            eprintln!(
                "conclave: cannot reach the admin console at {}: {error} (is the server \
                 running, and are you its OS user?)",
                socket.display()
            );
            ExitCode::from(2)
        }
    }
}

/// `conclave backup`: the running server writes it (its console answers), or, when no server
/// answers on the socket, this process opens the database and writes it.
fn backup(config: &Config, socket: &std::path::Path, dir: &std::path::Path) -> ExitCode {
    // The server resolves relative paths against its own working directory, not ours.
    let dir = match std::path::absolute(dir) {
        Ok(dir) => dir,
        Err(error) => {
            eprintln!("conclave: {}: {error}", dir.display());
            return ExitCode::from(2);
        }
    };
    let words = vec![
        "server".to_owned(),
        "backup".to_owned(),
        dir.display().to_string(),
    ];
    match conclave::admin::console::call(socket, words) {
        Ok(reply) if reply.ok => {
            println!("{}", reply.text);
            return ExitCode::SUCCESS;
        }
        Ok(reply) => {
            eprintln!("{}", reply.text);
            return ExitCode::FAILURE;
        }
        Err(error)
            if matches!(
                error.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
            ) => {}
        Err(error) => {
            eprintln!(
                "conclave: cannot reach the admin console at {}: {error}",
                socket.display()
            );
            return ExitCode::from(2);
        }
    }
    match conclave::backup::write_offline(config, &dir) {
        Ok(manifest) => {
            println!(
                "Backup of the stopped server written to `{}`: {} bytes of database, {} bytes \
                 of media.",
                dir.display(),
                manifest.database_bytes,
                manifest.media_bytes
            );
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("conclave: backup failed: {}", error.message());
            ExitCode::FAILURE
        }
    }
}

/// `conclave restore`: a backup copied back into a stopped server's empty directories.
fn restore(config: &Config, dir: &std::path::Path) -> ExitCode {
    match conclave::backup::restore(dir, config) {
        Ok(restored) => {
            println!(
                "Restored the backup of {} taken {} into `{}` (media in `{}`). Start the \
                 server.",
                restored.manifest.server_name,
                conclave::admin::time::format_ts(restored.manifest.taken_at),
                restored.database.display(),
                restored.media.display()
            );
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("conclave: restore failed: {}", error.message());
            ExitCode::FAILURE
        }
    }
}

async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
}

/// glibc raises its mmap threshold each time a large block is freed, up to 32 MiB, after which
/// blocks such as argon2's 19 MiB work area come from per-thread heaps and stay resident: a burst
/// of logins left the server at ~1 GB. A fixed threshold keeps large blocks mmapped, so they
/// go back to the system when freed.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn return_large_allocations_to_the_system() {
    // SAFETY: mallopt only changes allocator tuning; called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn return_large_allocations_to_the_system() {}
