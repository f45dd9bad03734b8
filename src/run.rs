//! Placeholder for run mode; replaced by the engineer building the runtime.
pub fn run(plan: crate::config::Plan, config_path: &std::path::Path) -> i32 {
    let _ = (plan, config_path);
    eprintln!("nvelox: run mode not built yet");
    2
}
