//! Progress bars on a terminal, silence everywhere else.

use std::io::{self, IsTerminal, Read};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A byte-counting progress bar that draws only when enabled and stderr is a terminal.
/// A bar made by [`Bars::blob`] also advances the overall bar it belongs to.
#[derive(Clone, Default)]
pub struct Progress {
    /// Empty when hidden; the bar itself first, then the bars it also advances.
    bars: Vec<ProgressBar>,
}

fn bytes_style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template).expect("static template").progress_chars("=> ")
}

const BAR: &str = "{msg} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} {eta}";

impl Progress {
    /// A bar for `total` bytes labelled `what`; hidden unless `enabled` and on a TTY.
    pub fn bytes(enabled: bool, total: u64, what: &str) -> Progress {
        if !enabled || !io::stderr().is_terminal() {
            return Progress::default();
        }
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        bar.set_style(bytes_style(BAR));
        bar.set_message(what.to_string());
        Progress { bars: vec![bar] }
    }

    /// Adds `n` bytes.
    pub fn inc(&self, n: u64) {
        for b in &self.bars {
            b.inc(n);
        }
    }

    /// Counts bytes read through `r`.
    pub fn wrap<'a, R: Read + Send + 'a>(&self, r: R) -> Box<dyn Read + Send + 'a> {
        if self.bars.is_empty() {
            Box::new(r)
        } else {
            Box::new(Counting { inner: r, progress: self.clone() })
        }
    }

    /// Takes back `n` bytes counted by a try that failed and starts over (a blob sent again).
    pub fn rewind(&self, n: u64) {
        for b in &self.bars {
            b.set_position(b.position().saturating_sub(n));
        }
    }

    /// Bytes counted so far by this bar.
    pub fn position(&self) -> u64 {
        self.bars.first().map_or(0, ProgressBar::position)
    }

    /// Removes the bar (an overall bar it advances stays).
    pub fn finish(&self) {
        if let Some(b) = self.bars.first() {
            b.finish_and_clear();
        }
    }
}

struct Counting<R> {
    inner: R,
    progress: Progress,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.progress.inc(n as u64);
        Ok(n)
    }
}

/// An overall bar with one bar per blob in flight below it (indicatif's
/// [`MultiProgress`]), for copies that move several blobs at once. Hidden unless enabled
/// and stderr is a terminal, like [`Progress`].
#[derive(Clone, Default)]
pub struct Bars {
    multi: Option<MultiProgress>,
    total: Progress,
}

impl Bars {
    /// The overall bar for `total` bytes labelled `what`.
    pub fn new(enabled: bool, total: u64, what: &str) -> Bars {
        if !enabled || !io::stderr().is_terminal() {
            return Bars::default();
        }
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        let bar = multi.add(ProgressBar::new(total));
        bar.set_style(bytes_style(BAR));
        bar.set_message(what.to_string());
        Bars { multi: Some(multi), total: Progress { bars: vec![bar] } }
    }

    /// The overall bar.
    pub fn total(&self) -> &Progress {
        &self.total
    }

    /// A bar for one blob of `size` bytes, which also advances the overall bar.
    pub fn blob(&self, label: &str, size: u64) -> Progress {
        let Some(m) = &self.multi else { return Progress::default() };
        let bar = m.add(ProgressBar::new(size));
        bar.set_style(bytes_style("  {msg} [{bar:24}] {bytes}/{total_bytes} {binary_bytes_per_sec}"));
        bar.set_message(label.to_string());
        let mut bars = vec![bar];
        bars.extend(self.total.bars.iter().cloned());
        Progress { bars }
    }

    /// A line above the bars (what was skipped, and why).
    pub fn note(&self, line: &str) {
        if let Some(m) = &self.multi {
            let _ = m.println(line);
        }
    }

    /// Removes every bar.
    pub fn finish(&self) {
        self.total.finish();
        if let Some(m) = &self.multi {
            let _ = m.clear();
        }
    }
}

/// A byte count for people: `1.5 MiB` (binary units, as dive and `du -h` show).
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn human_bytes_units() {
        assert_eq!(super::human_bytes(0), "0 B");
        assert_eq!(super::human_bytes(1023), "1023 B");
        assert_eq!(super::human_bytes(1536), "1.5 KiB");
        assert_eq!(super::human_bytes(5 << 30), "5.0 GiB");
    }
}
