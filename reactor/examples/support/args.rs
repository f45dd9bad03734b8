//! Command line shared by the examples: `[BIND] [--loops N] [FLAG...]`.

use reactor::BindSpec;

pub struct Args {
    pub spec: BindSpec,
    pub loops: usize,
    /// Which of the example's own `flags` were given (an example without
    /// flags of its own never reads it).
    #[allow(dead_code)]
    pub flags: Vec<&'static str>,
}

/// Parses argv. `default_bind` is used when no bind string is given;
/// `flags` are the example's extra switches; `usage` is printed on `--help`.
pub fn parse(
    usage: &str,
    default_bind: &str,
    default_loops: usize,
    flags: &[&'static str],
) -> Result<Args, String> {
    let mut spec = None;
    let mut loops = default_loops;
    let mut given = Vec::new();
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--loops" => {
                let v = it.next().ok_or("--loops needs a number")?;
                loops = v
                    .parse()
                    .map_err(|_| format!("--loops: {v:?} is not a number"))?;
            }
            "-h" | "--help" => return Err(usage.to_string()),
            s => match flags.iter().find(|f| **f == s) {
                Some(f) => given.push(*f),
                None => spec = Some(BindSpec::parse(s).map_err(|e| e.to_string())?),
            },
        }
    }
    let spec = match spec {
        Some(s) => s,
        None => BindSpec::parse(default_bind).map_err(|e| e.to_string())?,
    };
    Ok(Args {
        spec,
        loops: loops.max(1),
        flags: given,
    })
}
