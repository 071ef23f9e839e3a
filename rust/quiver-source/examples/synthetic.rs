//! Prints synthetic records as JSON lines: `synthetic [SEED] [COUNT]`.
//!
//! Feeds tools that take a file of sample payloads, such as Kafka's ProducerPerformance
//! (`--payload-file`) in `scripts/bench-produce`.

use std::io::{BufWriter, Write};

use quiver_source::synthetic;

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let seed = args
        .next()
        .map_or(Ok(0), |s| s.parse())
        .unwrap_or_else(|e| {
            eprintln!("SEED must be an unsigned integer: {e}");
            std::process::exit(2)
        });
    let count: u64 = args
        .next()
        .map_or(Ok(1000), |s| s.parse())
        .unwrap_or_else(|e| {
            eprintln!("COUNT must be an unsigned integer: {e}");
            std::process::exit(2)
        });
    let mut out = BufWriter::new(std::io::stdout().lock());
    let mut value = String::new();
    for index in 0..count {
        value.clear();
        synthetic::write_record(seed, index, &mut value);
        out.write_all(value.as_bytes())?;
        out.write_all(b"\n")?;
    }
    out.flush()
}
