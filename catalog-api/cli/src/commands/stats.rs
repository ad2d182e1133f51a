//! `rbee-catalog stats`: the download stats `/v1/stats/overview` and
//! `/v1/workers/:id/stats` serve, read from the database directly.

use rbee_catalog::analytics::text;
use rbee_catalog::domain::stats;

use super::database::DatabaseArgs;

/// Flags of `stats`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    database: DatabaseArgs,
    /// One worker's stats instead of the overview.
    #[arg(long)]
    worker: Option<String>,
    /// How many days, today included (1 to 365).
    #[arg(long, default_value_t = stats::DEFAULT_DAYS,
        value_parser = clap::value_parser!(u32).range(1..=i64::from(stats::MAX_DAYS)))]
    days: u32,
}

/// Prints the stats.
pub async fn run(args: Args) -> anyhow::Result<()> {
    if let Some(id) = &args.worker {
        rbee_schemas::validate_worker_id(id).map_err(|e| anyhow::anyhow!("--worker: {e}"))?;
    }
    let store = args.database.open().await?;
    let today = chrono::Utc::now().date_naive();
    let output = match &args.worker {
        Some(id) => stats::worker_stats(&store, id, args.days, today)
            .await
            .map(|s| {
                render(args.database.json, text::json(&s), || {
                    text::worker_stats(&s)
                })
            }),
        None => stats::overview(&store, args.days, today)
            .await
            .map(|s| render(args.database.json, text::json(&s), || text::overview(&s))),
    };
    store.close().await;
    print!("{}", output?);
    Ok(())
}

/// The JSON (as the routes answer it) or the text.
fn render(json: bool, as_json: String, as_text: impl FnOnce() -> String) -> String {
    if json { as_json } else { as_text() }
}
