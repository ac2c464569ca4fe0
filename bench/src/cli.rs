//! Command-line front end: parses arguments into [`RunOptions`], runs, prints the summary and
//! writes the report and plot. Everything of substance lives in the library.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::{BenchError, Distribution, Knobs, Report, RunOptions, Scenario, compare, render_svg};

#[derive(Parser)]
#[command(
    name = "conclave-bench",
    version,
    about = "Load generator and benchmark for any Matrix homeserver",
    long_about = "Load generator and benchmark for any spec-compliant Matrix homeserver \
                  (Conclave, Synapse, Conduit). `run` creates users and rooms and runs \
                  scenarios, printing a summary and optionally writing a JSON report and an \
                  SVG plot; `compare` prints two reports side by side."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create a population of users and rooms and run scenarios against a homeserver.
    Run(Box<RunArgs>),
    /// Print two JSON reports side by side, with B/A ratios and which is better.
    Compare {
        /// Report A (the baseline).
        a: PathBuf,
        /// Report B.
        b: PathBuf,
    },
    /// Render a JSON report's latency-over-time plot as SVG.
    Plot {
        report: PathBuf,
        /// Where to write the SVG.
        out: PathBuf,
    },
}

#[derive(Args)]
struct RunArgs {
    /// Homeserver base URL.
    #[arg(long)]
    url: String,
    /// Register users with this registration token (m.login.registration_token).
    #[arg(
        long,
        conflicts_with = "admin_token",
        env = "CONCLAVE_BENCH_REGISTRATION_TOKEN",
        hide_env_values = true
    )]
    registration_token: Option<String>,
    /// Create users with the Synapse admin API using this admin access token.
    #[arg(long, env = "CONCLAVE_BENCH_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// Server name for admin-created user IDs (default: from the admin's whoami).
    #[arg(long)]
    server_name: Option<String>,
    /// With --admin-token, leave the bench users' rate limits alone (default: lifted).
    #[arg(long)]
    keep_rate_limits: bool,
    /// Users in the population.
    #[arg(long, default_value_t = 20)]
    users: usize,
    /// Rooms in the population.
    #[arg(long, default_value_t = 10)]
    rooms: usize,
    /// Members per room (the mean, for --distribution skewed).
    #[arg(long, default_value_t = 5)]
    members_per_room: usize,
    /// How room sizes are distributed.
    #[arg(long, value_enum, default_value_t = Distribution::Uniform)]
    distribution: Distribution,
    /// Comma-separated scenarios, or "all": idle-rss, sequential-send, concurrent-send,
    /// wakeup, initial-sync-history, initial-sync-rooms, steady-chat, join-storm,
    /// login-burst, register-burst.
    #[arg(long, default_value = "all")]
    scenarios: String,
    #[command(flatten)]
    knobs: Knobs,
    /// PID of the server process, to sample its RSS and CPU (Linux /proc).
    #[arg(long)]
    pid: Option<u32>,
    /// A name for this run (shown by compare and in the plot).
    #[arg(long)]
    label: Option<String>,
    /// Write the JSON report here.
    #[arg(long)]
    report: Option<PathBuf>,
    /// Write an SVG plot of latency over time here.
    #[arg(long)]
    plot: Option<PathBuf>,
    /// No progress bars or status lines (the summary is still printed).
    #[arg(long)]
    quiet: bool,
    /// Seed for names and memberships.
    #[arg(long)]
    seed: Option<u64>,
    /// Setup requests in flight at once.
    #[arg(long, default_value_t = 8)]
    setup_concurrency: usize,
}

impl RunArgs {
    fn options(&self) -> Result<RunOptions, BenchError> {
        Ok(RunOptions {
            url: self.url.clone(),
            registration_token: self.registration_token.clone(),
            admin_token: self.admin_token.clone(),
            server_name: self.server_name.clone(),
            lift_rate_limits: !self.keep_rate_limits,
            users: self.users,
            rooms: self.rooms,
            members_per_room: self.members_per_room,
            distribution: self.distribution,
            scenarios: Scenario::parse_list(&self.scenarios)?,
            pid: self.pid,
            label: self.label.clone(),
            quiet: self.quiet,
            seed: self.seed,
            setup_concurrency: self.setup_concurrency,
            knobs: self.knobs.clone(),
        })
    }
}

/// The whole CLI; returns the process exit code (0 ok, 1 run failed, 2 bad usage or files).
/// Builds its own Tokio runtime, so call it from synchronous code only.
pub fn cli_main(args: Vec<String>) -> i32 {
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return e.exit_code();
        }
    };
    match cli.command {
        Command::Run(args) => run_command(&args),
        Command::Compare { a, b } => {
            let loaded = Report::load(&a.to_string_lossy())
                .and_then(|ra| Ok((ra, Report::load(&b.to_string_lossy())?)));
            match loaded {
                Ok((ra, rb)) => {
                    print!("{}", compare(&ra, &rb));
                    0
                }
                Err(e) => fail(&e, 2),
            }
        }
        Command::Plot { report, out } => match Report::load(&report.to_string_lossy()) {
            Ok(r) => match write(&out, &render_svg(&r)) {
                Ok(()) => 0,
                Err(e) => fail(&e, 2),
            },
            Err(e) => fail(&e, 2),
        },
    }
}

fn run_command(args: &RunArgs) -> i32 {
    let opts = match args.options() {
        Ok(opts) => opts,
        Err(e) => return fail(&e, 2),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(&BenchError::Other(format!("cannot start Tokio: {e}")), 1),
    };
    let report = match runtime.block_on(crate::run(opts)) {
        Ok(report) => report,
        Err(e) => return fail(&e, 1),
    };
    print!("{}", report.summary_table());
    let mut code = 0;
    if let Some(path) = &args.report
        && let Err(e) = write(path, &report.to_json())
    {
        code = fail(&e, 2);
    }
    if let Some(path) = &args.plot
        && let Err(e) = write(path, &render_svg(&report))
    {
        code = fail(&e, 2);
    }
    code
}

fn write(path: &PathBuf, text: &str) -> Result<(), BenchError> {
    std::fs::write(path, text)
        .map_err(|e| BenchError::Io(format!("cannot write {}: {e}", path.display())))
}

fn fail(e: &BenchError, code: i32) -> i32 {
    eprintln!("conclave-bench: {e}");
    code
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn run_help_lists_every_knob() {
        let mut command = Cli::command();
        let help = command
            .find_subcommand_mut("run")
            .unwrap()
            .render_long_help()
            .to_string();
        println!("{help}");
        for flag in [
            "--url",
            "--registration-token",
            "--admin-token",
            "--scenarios",
            "--send-concurrency",
            "--sequential-sends",
            "--wakeup-reps",
            "--history-messages",
            "--sync-rooms",
            "--chat-rate",
            "--join-storm-users",
            "--login-burst",
            "--register-burst",
            "--pid",
            "--report",
            "--plot",
            "--quiet",
        ] {
            assert!(help.contains(flag), "{flag} missing from\n{help}");
        }
    }

    #[test]
    fn parses_run_options() {
        let cli = Cli::try_parse_from([
            "conclave-bench",
            "run",
            "--url",
            "http://localhost:8008",
            "--registration-token",
            "tok",
            "--scenarios",
            "wakeup,sequential-send",
            "--distribution",
            "skewed",
            "--send-concurrency",
            "4",
        ])
        .unwrap();
        let Command::Run(args) = cli.command else {
            panic!("not run")
        };
        let opts = args.options().unwrap();
        assert_eq!(
            opts.scenarios,
            vec![Scenario::SequentialSend, Scenario::Wakeup]
        );
        assert_eq!(opts.distribution, Distribution::Skewed);
        assert_eq!(opts.knobs.send_concurrency, 4);
        assert_eq!(opts.registration_token.as_deref(), Some("tok"));
        assert!(opts.lift_rate_limits);
        assert!(Cli::try_parse_from(["conclave-bench", "run"]).is_err());
    }

    #[test]
    fn compare_command_reads_files() {
        let dir = std::env::temp_dir().join(format!("conclave-bench-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let a = crate::report::tests::fabricated("a", 10.0, 1.0, 1 << 20);
        let path = dir.join("a.json");
        std::fs::write(&path, a.to_json()).unwrap();
        let p = path.to_string_lossy().to_string();
        assert_eq!(
            cli_main(vec!["cb".into(), "compare".into(), p.clone(), p.clone()]),
            0
        );
        let svg = dir.join("a.svg").to_string_lossy().to_string();
        assert_eq!(
            cli_main(vec!["cb".into(), "plot".into(), p, svg.clone()]),
            0
        );
        assert!(std::fs::read_to_string(&svg).unwrap().contains("<svg"));
        assert_eq!(
            cli_main(vec![
                "cb".into(),
                "compare".into(),
                "/nonexistent".into(),
                "/x".into()
            ]),
            2
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
