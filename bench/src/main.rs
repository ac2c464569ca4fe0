//! conclave-bench: load generator for any Matrix homeserver. See the library for the work.
fn main() {
    std::process::exit(conclave_bench::cli_main(std::env::args().collect()));
}
