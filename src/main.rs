//! The native `resnet` command (see `resnet --help`).

#[cfg(not(target_family = "wasm"))]
fn main() {
    use clap::Parser;
    resnet::cli::keep_freed_memory();
    let cli = resnet::cli::Cli::parse();
    if let Err(err) = resnet::cli::run(cli) {
        eprintln!("error: {err}");
        std::process::exit(1);
    }
}

/// The command is native only; the wasm build is the library (the npm package).
#[cfg(target_family = "wasm")]
fn main() {}
