//! A minimal Prometheus text-format (0.0.4) writer: enough for counters and gauges with
//! labels, without a metrics registry crate.

use std::fmt::Write;

/// Builds one `/metrics` page.
#[derive(Debug, Default)]
pub struct PromWriter {
    out: String,
}

impl PromWriter {
    /// An empty page.
    pub fn new() -> Self {
        Self::default()
    }

    /// Writes a metric with one unlabelled sample.
    pub fn single(&mut self, name: &str, kind: &str, help: &str, value: impl std::fmt::Display) {
        self.header(name, kind, help);
        let _ = writeln!(self.out, "{name} {value}");
    }

    /// Writes the `# HELP` / `# TYPE` lines of a metric whose samples follow.
    pub fn header(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
    }

    /// Writes one sample with labels; label values are escaped.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"");
                for c in v.chars() {
                    match c {
                        '\\' => self.out.push_str("\\\\"),
                        '"' => self.out.push_str("\\\""),
                        '\n' => self.out.push_str("\\n"),
                        c => self.out.push(c),
                    }
                }
                self.out.push('"');
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
    }

    /// The finished page.
    pub fn finish(self) -> String {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_text_format() {
        let mut w = PromWriter::new();
        w.single("up", "gauge", "Whether it runs.", 1);
        w.header("hits_total", "counter", "Hits.");
        w.sample("hits_total", &[("node", "a\"b")], 3);
        assert_eq!(
            w.finish(),
            "# HELP up Whether it runs.\n# TYPE up gauge\nup 1\n\
             # HELP hits_total Hits.\n# TYPE hits_total counter\nhits_total{node=\"a\\\"b\"} 3\n"
        );
    }
}
