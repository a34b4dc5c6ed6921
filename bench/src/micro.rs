//! Criterion's results from this run (`target/criterion`, written by `cargo bench`).

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use serde_json::Value;

/// Median time per iteration, in nanoseconds, by criterion's full id
/// (`verify/cxbridge/1024`).
pub fn read(dir: &Path) -> Result<BTreeMap<String, f64>> {
    let mut out = BTreeMap::new();
    visit(dir, &mut out).with_context(|| {
        format!(
            "cannot read criterion's results under {} (run `cargo bench -p cxbridge-bench` first)",
            dir.display()
        )
    })?;
    Ok(out)
}

fn visit(dir: &Path, out: &mut BTreeMap<String, f64>) -> Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if !path.is_dir() {
            continue;
        }
        if path.file_name().is_some_and(|n| n == "new") {
            let id = std::fs::read_to_string(path.join("benchmark.json"))
                .ok()
                .and_then(|t| serde_json::from_str::<Value>(&t).ok())
                .and_then(|v| v["full_id"].as_str().map(str::to_owned));
            let median = std::fs::read_to_string(path.join("estimates.json"))
                .ok()
                .and_then(|t| serde_json::from_str::<Value>(&t).ok())
                .and_then(|v| v["median"]["point_estimate"].as_f64());
            if let (Some(id), Some(median)) = (id, median) {
                out.insert(id, median);
            }
        } else {
            visit(&path, out)?;
        }
    }
    Ok(())
}
