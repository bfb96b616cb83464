//! Times parsing an instruction file natively, for `npm run bench`.
//!
//! `cargo run --release --example parse_seed -- FILE [ITERATIONS]` prints one line:
//! `parse_seed bytes=N iterations=N mean_us=X p50_us=Y p99_us=Z`.

use std::time::Instant;

use switchyard::core::registry::{instructions, workflow};

/// Iterations when none are given: enough for a stable p99 in well under a second.
const ITERATIONS_DEFAULT: usize = 2000;

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(path) = args.next() else {
        eprintln!("usage: parse_seed FILE [ITERATIONS]");
        std::process::exit(2);
    };
    let iterations = args.next().and_then(|n| n.parse().ok()).unwrap_or(ITERATIONS_DEFAULT);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(err) => {
            eprintln!("cannot read {path}: {err}");
            std::process::exit(2);
        }
    };
    let mut times = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        let started = Instant::now();
        let parsed = instructions::parse(&text);
        let definition = workflow::from_instructions("bench".into(), &parsed.file);
        std::hint::black_box(&definition);
        times.push(started.elapsed().as_secs_f64() * 1e6);
    }
    times.sort_by(f64::total_cmp);
    let mean = times.iter().sum::<f64>() / times.len() as f64;
    let at = |p: f64| times[((p * times.len() as f64).ceil() as usize).clamp(1, times.len()) - 1];
    println!(
        "parse_seed bytes={} iterations={iterations} mean_us={mean:.1} p50_us={:.1} p99_us={:.1}",
        text.len(),
        at(0.50),
        at(0.99)
    );
}
