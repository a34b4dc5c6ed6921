//! The SVG charts BENCHMARKS.md embeds, drawn with plotters from the run's figures.

use std::path::Path;

use anyhow::{Result, anyhow};
use plotters::prelude::*;

const SIZE: (u32, u32) = (760, 420);
const CXBRIDGE: RGBColor = RGBColor(0x1f, 0x77, 0xb4);
const PEER: RGBColor = RGBColor(0xd6, 0x27, 0x28);
/// One colour per stacked service, in order.
const SERVICE_COLOURS: [RGBColor; 6] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0x94, 0x67, 0xbd),
    RGBColor(0x8c, 0x56, 0x4b),
];

fn failed(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow!("cannot draw the chart: {e}")
}

/// Bars of cold start (ms) per function, the peer's last and in its own colour.
pub fn cold_starts(path: &Path, functions: &[(String, f64)], peer: f64) -> Result<()> {
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(failed)?;
    let n = functions.len() + 1;
    let top = functions
        .iter()
        .map(|(_, v)| *v)
        .fold(peer, f64::max)
        .max(1.0)
        * 1.15;
    let mut chart = ChartBuilder::on(&root)
        .caption("Cold start: exec to ready (median, ms)", ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(0f64..n as f64, 0f64..top)
        .map_err(failed)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .disable_x_axis()
        .y_desc("ms")
        .draw()
        .map_err(failed)?;
    let bars = functions
        .iter()
        .map(|(name, v)| (name.as_str(), *v, CXBRIDGE))
        .chain(std::iter::once(("Node.js peer", peer, PEER)));
    for (i, (name, value, colour)) in bars.enumerate() {
        let x = i as f64;
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [(x + 0.15, 0.0), (x + 0.85, value)],
                colour.filled(),
            )))
            .map_err(failed)?;
        chart
            .draw_series(std::iter::once(Text::new(
                format!("{value:.1}"),
                (x + 0.3, value + top * 0.02),
                ("sans-serif", 13),
            )))
            .map_err(failed)?;
        chart
            .draw_series(std::iter::once(Text::new(
                name.to_owned(),
                (x + 0.05, -top * 0.04),
                ("sans-serif", 11),
            )))
            .map_err(failed)?;
    }
    root.present().map_err(failed)?;
    Ok(())
}

/// Latency percentiles (ms, log scale) against the offered rate (webhooks/s).
pub fn latencies(path: &Path, points: &[(u32, [f64; 3])]) -> Result<()> {
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(failed)?;
    let max_rate = points.iter().map(|(r, _)| *r).max().unwrap_or(1).max(1);
    let top = points
        .iter()
        .flat_map(|(_, p)| p.iter().copied())
        .fold(10.0, f64::max)
        * 1.5;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Acknowledgement latency against the offered rate",
            ("sans-serif", 20),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0u32..max_rate + max_rate / 10, (1f64..top).log_scale())
        .map_err(failed)?;
    chart
        .configure_mesh()
        .x_desc("webhooks per second")
        .y_desc("ms")
        .draw()
        .map_err(failed)?;
    for (k, (label, colour)) in [
        ("p50", CXBRIDGE),
        ("p90", SERVICE_COLOURS[1]),
        ("p99", PEER),
    ]
    .into_iter()
    .enumerate()
    {
        let series: Vec<(u32, f64)> = points.iter().map(|(r, p)| (*r, p[k].max(1.0))).collect();
        chart
            .draw_series(LineSeries::new(series.clone(), colour.stroke_width(2)))
            .map_err(failed)?
            .label(label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], colour));
        chart
            .draw_series(
                series
                    .into_iter()
                    .map(|p| Circle::new(p, 3, colour.filled())),
            )
            .map_err(failed)?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(failed)?;
    root.present().map_err(failed)?;
    Ok(())
}

/// Cost per million webhooks, one stacked bar per side, a layer per service.
pub fn costs(path: &Path, sides: &[(&str, Vec<(&str, f64)>)]) -> Result<()> {
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(failed)?;
    let top = sides
        .iter()
        .map(|(_, services)| services.iter().map(|(_, v)| v).sum::<f64>())
        .fold(0.1, f64::max)
        * 1.2;
    let mut chart = ChartBuilder::on(&root)
        .caption("Cost per million webhooks (USD)", ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..sides.len() as f64 + 1.2, 0f64..top)
        .map_err(failed)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .disable_x_axis()
        .y_desc("USD")
        .draw()
        .map_err(failed)?;
    let services: Vec<&str> = sides
        .first()
        .map(|(_, s)| s.iter().map(|(name, _)| *name).collect())
        .unwrap_or_default();
    for (k, service) in services.iter().enumerate() {
        let colour = SERVICE_COLOURS[k % SERVICE_COLOURS.len()];
        let bars: Vec<Rectangle<(f64, f64)>> = sides
            .iter()
            .enumerate()
            .map(|(i, (_, layers))| {
                let below: f64 = layers.iter().take(k).map(|(_, v)| v).sum();
                let value = layers.get(k).map_or(0.0, |(_, v)| *v);
                let x = i as f64;
                Rectangle::new(
                    [(x + 0.2, below), (x + 0.8, below + value)],
                    colour.filled(),
                )
            })
            .collect();
        chart
            .draw_series(bars)
            .map_err(failed)?
            .label(*service)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], colour.filled()));
    }
    for (i, (name, layers)) in sides.iter().enumerate() {
        let total: f64 = layers.iter().map(|(_, v)| v).sum();
        let x = i as f64;
        chart
            .draw_series([
                Text::new(
                    format!("${total:.2}"),
                    (x + 0.35, total + top * 0.02),
                    ("sans-serif", 13),
                ),
                Text::new(
                    (*name).to_owned(),
                    (x + 0.3, -top * 0.04),
                    ("sans-serif", 12),
                ),
            ])
            .map_err(failed)?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(failed)?;
    root.present().map_err(failed)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_chart_is_an_svg_with_its_labels() {
        let dir = std::env::temp_dir().join(format!("cxbridge-charts-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let cold = dir.join("cold.svg");
        cold_starts(&cold, &[("webhook-receiver".into(), 14.2)], 180.0).unwrap();
        let lat = dir.join("lat.svg");
        latencies(
            &lat,
            &[(100, [12.0, 20.0, 40.0]), (200, [15.0, 30.0, 90.0])],
        )
        .unwrap();
        let cost = dir.join("cost.svg");
        costs(
            &cost,
            &[
                ("cxbridge", vec![("API", 1.0), ("DynamoDB", 2.5)]),
                ("peer", vec![("API", 1.0), ("DynamoDB", 1.9)]),
            ],
        )
        .unwrap();
        for (path, label) in [
            (&cold, "webhook-receiver"),
            (&lat, "p99"),
            (&cost, "DynamoDB"),
        ] {
            let svg = std::fs::read_to_string(path).unwrap();
            assert!(svg.starts_with("<svg"), "{}", path.display());
            assert!(svg.contains(label), "{} lacks {label}", path.display());
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
