//! The `callvault` binary: everything is in the library; see [`callvault::cli`].

fn main() -> std::process::ExitCode {
    callvault::cli::main()
}
