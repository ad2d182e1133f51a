//! The pages' charts as plain geometry: every coordinate is computed here,
//! in whole SVG user units, and `templates/charts.html` only writes the
//! numbers into `<rect>` and `<text>` elements. No script draws anything,
//! so the charts work under the strict CSP and without JavaScript; each
//! comes with its figures as a table for screen readers and copying.

/// A column chart: one column per key (per day), left to right.
#[derive(Debug)]
pub struct Columns {
    /// Unique on the page; the SVG's title and the table refer to it.
    pub id: String,
    /// The caption.
    pub title: String,
    /// The SVG's width and height (its `viewBox`).
    pub width: u32,
    pub height: u32,
    /// The columns.
    pub bars: Vec<Column>,
    /// Labels under the axis: the first, middle and last keys.
    pub ticks: Vec<Tick>,
    /// The highest value, written at the top of the axis.
    pub max: u64,
    /// Where the axis line is.
    pub axis_y: u32,
    pub plot_left: u32,
    pub plot_right: u32,
    /// The sum of all values.
    pub total: u64,
    /// Nothing to draw: every value is zero.
    pub empty: bool,
}

/// One column.
#[derive(Debug)]
pub struct Column {
    pub x: u32,
    pub y: u32,
    pub w: u32,
    pub h: u32,
    /// The key (a day) and its value, for the tooltip and the table.
    pub label: String,
    pub value: u64,
}

/// A label under the axis.
#[derive(Debug)]
pub struct Tick {
    pub x: u32,
    pub y: u32,
    pub text: String,
    /// `start`, `middle` or `end`.
    pub anchor: &'static str,
}

/// Height of a column chart's plot area.
const PLOT_HEIGHT: u32 = 160;
/// Width of one column's slot.
const SLOT: u32 = 20;
/// Room left of the plot for the axis label.
const LEFT: u32 = 44;
/// Room above the plot.
const TOP: u32 = 12;

impl Columns {
    /// The chart of `points` (key, value), in order.
    pub fn new(id: &str, title: &str, points: &[(String, u64)]) -> Columns {
        let n = u32::try_from(points.len()).unwrap_or(u32::MAX).max(1);
        let max = points.iter().map(|p| p.1).max().unwrap_or(0);
        let total = points.iter().map(|p| p.1).sum();
        let axis_y = TOP + PLOT_HEIGHT;
        let bars = points
            .iter()
            .enumerate()
            .map(|(i, (label, value))| {
                let h = scale(*value, max, PLOT_HEIGHT);
                Column {
                    x: LEFT + u32::try_from(i).unwrap_or(0) * SLOT + 3,
                    y: axis_y - h,
                    w: SLOT - 6,
                    h,
                    label: label.clone(),
                    value: *value,
                }
            })
            .collect::<Vec<_>>();
        let plot_right = LEFT + n * SLOT;
        let mut ticks = Vec::new();
        if let (Some(first), Some(last)) = (points.first(), points.last()) {
            ticks.push(Tick {
                x: LEFT,
                y: axis_y + 18,
                text: first.0.clone(),
                anchor: "start",
            });
            if points.len() > 2 {
                let mid = points.len() / 2;
                ticks.push(Tick {
                    x: LEFT + u32::try_from(mid).unwrap_or(0) * SLOT + SLOT / 2,
                    y: axis_y + 18,
                    text: points[mid].0.clone(),
                    anchor: "middle",
                });
            }
            if points.len() > 1 {
                ticks.push(Tick {
                    x: plot_right,
                    y: axis_y + 18,
                    text: last.0.clone(),
                    anchor: "end",
                });
            }
        }
        Columns {
            id: id.to_owned(),
            title: title.to_owned(),
            width: plot_right + 4,
            height: axis_y + 28,
            bars,
            ticks,
            max,
            axis_y,
            plot_left: LEFT,
            plot_right,
            total,
            empty: total == 0,
        }
    }
}

/// A bar chart: one labelled bar per key, top to bottom.
#[derive(Debug)]
pub struct Rows {
    /// Unique on the page.
    pub id: String,
    /// The caption.
    pub title: String,
    pub width: u32,
    pub height: u32,
    pub rows: Vec<Row>,
    /// The sum of all values.
    pub total: u64,
    /// Nothing to draw.
    pub empty: bool,
}

/// One bar with its label above it.
#[derive(Debug)]
pub struct Row {
    pub label: String,
    pub value: u64,
    /// The value's share of the total, e.g. `42%`.
    pub share: String,
    pub label_y: u32,
    pub bar_y: u32,
    pub bar_w: u32,
    pub value_x: u32,
}

/// The widest bar.
const BAR_MAX: u32 = 480;
/// Height of one row (label above, bar below).
const ROW: u32 = 40;

impl Rows {
    /// The chart of `points` (key, value), in the given order.
    pub fn new(id: &str, title: &str, points: &[(String, u64)]) -> Rows {
        let max = points.iter().map(|p| p.1).max().unwrap_or(0);
        let total: u64 = points.iter().map(|p| p.1).sum();
        let rows = points
            .iter()
            .enumerate()
            .map(|(i, (label, value))| {
                let top = u32::try_from(i).unwrap_or(0) * ROW;
                let bar_w = scale(*value, max, BAR_MAX).max(u32::from(*value > 0) * 2);
                Row {
                    label: label.chars().take(60).collect(),
                    value: *value,
                    share: percent(*value, total),
                    label_y: top + 14,
                    bar_y: top + 20,
                    bar_w,
                    value_x: bar_w + 6,
                }
            })
            .collect::<Vec<_>>();
        Rows {
            id: id.to_owned(),
            title: title.to_owned(),
            width: BAR_MAX + 80,
            height: u32::try_from(rows.len()).unwrap_or(0).max(1) * ROW,
            rows,
            total,
            empty: total == 0,
        }
    }
}

/// `value` of `max` as a length of at most `full` units, rounded.
fn scale(value: u64, max: u64, full: u32) -> u32 {
    if max == 0 {
        return 0;
    }
    let scaled = (u128::from(value) * u128::from(full) + u128::from(max) / 2) / u128::from(max);
    u32::try_from(scaled).unwrap_or(full).min(full)
}

/// `part` of `total` in whole percent.
fn percent(part: u64, total: u64) -> String {
    if total == 0 {
        return "0%".to_owned();
    }
    format!(
        "{}%",
        (u128::from(part) * 100 + u128::from(total) / 2) / u128::from(total)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn points(values: &[u64]) -> Vec<(String, u64)> {
        values
            .iter()
            .enumerate()
            .map(|(i, v)| (format!("day {i}"), *v))
            .collect()
    }

    #[test]
    fn columns_are_scaled_to_the_highest_value_and_stand_on_the_axis() {
        let c = Columns::new("d", "Downloads", &points(&[0, 5, 10]));
        assert_eq!(c.total, 15);
        assert_eq!(c.max, 10);
        let heights: Vec<u32> = c.bars.iter().map(|b| b.h).collect();
        assert_eq!(heights, vec![0, PLOT_HEIGHT / 2, PLOT_HEIGHT]);
        for b in &c.bars {
            assert_eq!(b.y + b.h, c.axis_y);
            assert!(b.x + b.w <= c.plot_right);
        }
        assert!(c.plot_right < c.width);
        assert_eq!(c.ticks.len(), 3);
        assert!(!c.empty);
    }

    #[test]
    fn an_empty_chart_says_so_and_divides_by_nothing() {
        let c = Columns::new("d", "Downloads", &points(&[0, 0]));
        assert!(c.empty);
        assert!(c.bars.iter().all(|b| b.h == 0));
        let r = Rows::new("p", "Platforms", &[]);
        assert!(r.empty);
        assert_eq!(r.height, ROW);
    }

    #[test]
    fn bars_show_their_share_and_a_small_value_stays_visible() {
        let r = Rows::new(
            "p",
            "Platforms",
            &[("linux-x86_64".into(), 999), ("macos-aarch64".into(), 1)],
        );
        assert_eq!(r.rows[0].bar_w, BAR_MAX);
        assert_eq!(r.rows[0].share, "100%");
        assert_eq!(r.rows[1].bar_w, 2, "a single download is still drawn");
        assert_eq!(r.rows[1].share, "0%");
        assert_eq!(r.total, 1000);
    }
}
