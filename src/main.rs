use clap::Parser;

fn main() {
    let cli = resnet::cli::Cli::parse();
    if let Err(err) = resnet::cli::run(cli) {
        eprintln!("error: {err}");
        std::process::exit(1);
    }
}
