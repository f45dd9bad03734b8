//! The `nvelox` binary: hands argv to `nvelox::cli` and exits with its code.
fn main() {
    // Lossy: a non-UTF-8 path then fails to open with a clear message
    // instead of the process refusing to start.
    let args: Vec<String> = std::env::args_os()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    std::process::exit(nvelox::cli::main_with_args(&args));
}
