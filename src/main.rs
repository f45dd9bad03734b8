fn main() {
    let args: Vec<String> = std::env::args().collect();
    let path = std::path::PathBuf::from(args.get(2).cloned().unwrap_or("conf/nvelox.yaml".into()));
    match nvelox::config::load(&path) {
        Ok(plan) => std::process::exit(nvelox::run::run(plan, &path)),
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1)
        }
    }
}
