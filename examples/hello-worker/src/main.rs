//! The example worker: a real, runnable binary that the example release
//! ships, so an install can be checked by running what was installed.

fn main() {
    println!(
        "{} {} (cpu)",
        env!("CARGO_PKG_NAME"),
        env!("CARGO_PKG_VERSION")
    );
}
