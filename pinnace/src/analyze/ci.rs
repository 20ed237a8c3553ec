//! CI gates with dive's rules, defaults and config file, plus pinnace's own
//! `highestReclaimableBytes`.
//!
//! Rules (dive `cmd/dive/cli/internal/command/ci/rules.go`): a rule fails only when the
//! figure is strictly past its threshold (equal passes):
//! - `lowestEfficiency` (default `0.9`): fails when efficiency < threshold.
//! - `highestWastedBytes` (default disabled): fails when wasted bytes > threshold.
//! - `highestUserWastedPercent` (default `0.1`, a ratio): fails when wasted / user bytes
//!   > threshold (a NaN ratio, one-layer image with nothing wasted, passes as in Go).
//! - `highestReclaimableBytes` (pinnace, default disabled): fails when reclaimable > threshold.
//!
//! `disabled`, `off`, `false` or an empty value skip a rule. Ratios must lie in 0..=1.
//! Byte sizes are parsed like dive's (go-humanize `ParseBytes`): `20MB` = 20·10^6,
//! `20MiB` = 20·2^20, `1.5k` = 1500, a bare number is bytes.

use std::collections::BTreeMap;

use serde::Serialize;

use super::inspect::Inspection;
use super::AnalyzeError;

/// The rule keys, in dive's camelCase.
pub const KEYS: [&str; 4] =
    ["lowestEfficiency", "highestWastedBytes", "highestUserWastedPercent", "highestReclaimableBytes"];

/// Rule values as configured (strings, parsed on evaluation), starting from the defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CiConfig(BTreeMap<String, String>);

impl Default for CiConfig {
    fn default() -> Self {
        let mut m = BTreeMap::new();
        for (k, v) in KEYS.iter().zip(["0.9", "disabled", "0.1", "disabled"]) {
            m.insert(k.to_string(), v.to_string());
        }
        CiConfig(m)
    }
}

impl CiConfig {
    /// Sets one rule; unknown keys are a misconfiguration.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), AnalyzeError> {
        if !KEYS.contains(&key) {
            return Err(AnalyzeError::CiConfig(format!("unknown rule {key:?} (known: {})", KEYS.join(", "))));
        }
        self.0.insert(key.to_string(), value.trim().to_string());
        Ok(())
    }

    /// The configured value of a rule.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// Applies the `rules:` section of a `.dive-ci` file.
    ///
    /// A minimal reader for that flat YAML (a `rules:` mapping of keys to scalars, `#`
    /// comments, optional quotes) rather than a YAML crate: it is the only YAML pinnace
    /// reads, and serde_yaml is unmaintained while its forks pull a whole YAML engine
    /// into a binary meant to stay small. Anything else is reported, not guessed.
    pub fn apply_dive_ci(&mut self, text: &str) -> Result<(), AnalyzeError> {
        let mut in_rules = false;
        for (n, raw) in text.lines().enumerate() {
            let line = strip_comment(raw).trim_end();
            if line.trim().is_empty() || line.trim() == "---" {
                continue;
            }
            let indented = line.starts_with(' ') || line.starts_with('\t');
            let bad = |why: &str| AnalyzeError::CiConfig(format!("line {}: {why}: {raw:?}", n + 1));
            let (key, value) = line.trim().split_once(':').ok_or_else(|| bad("expected `key: value`"))?;
            let value = unquote(value.trim());
            if !indented {
                in_rules = key == "rules";
                if in_rules && !value.is_empty() {
                    return Err(bad("`rules:` must be followed by indented `key: value` lines"));
                }
                continue;
            }
            if in_rules {
                self.set(key.trim(), value).map_err(|e| bad(&e.to_string()))?;
            }
        }
        Ok(())
    }

    /// Evaluates every rule; a value that does not parse is an error (misconfiguration).
    pub fn evaluate(&self, i: &Inspection) -> Result<Vec<RuleResult>, AnalyzeError> {
        let uwp = i.user_wasted_percent.unwrap_or(if i.wasted_bytes == 0 { f64::NAN } else { f64::INFINITY });
        KEYS.iter()
            .map(|&key| {
                let value = self.get(key).unwrap_or("disabled");
                if is_disabled(value) {
                    return Ok(RuleResult { rule: key, status: Status::Skip, message: "disabled".into() });
                }
                let (fail, message) = match key {
                    "lowestEfficiency" => {
                        let t = ratio(key, value)?;
                        (t > i.efficiency, format!("efficiency={:.4} threshold={value}", i.efficiency))
                    }
                    "highestWastedBytes" => {
                        let t = parse_bytes(value).map_err(|e| bad_value(key, value, &e))?;
                        (i.wasted_bytes > t, format!("wasted-bytes={} threshold={t}", i.wasted_bytes))
                    }
                    "highestUserWastedPercent" => {
                        let t = ratio(key, value)?;
                        (uwp > t, format!("user-wasted-ratio={uwp:.4} threshold={value}"))
                    }
                    _ => {
                        let t = parse_bytes(value).map_err(|e| bad_value(key, value, &e))?;
                        (i.reclaimable_bytes > t, format!("reclaimable-bytes={} threshold={t}", i.reclaimable_bytes))
                    }
                };
                Ok(RuleResult { rule: key, status: if fail { Status::Fail } else { Status::Pass }, message })
            })
            .collect()
    }
}

/// A rule's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Status {
    /// Within the threshold.
    Pass,
    /// Past the threshold.
    Fail,
    /// Disabled.
    Skip,
}

/// One rule's outcome with its figures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuleResult {
    /// The rule key.
    pub rule: &'static str,
    /// Outcome.
    pub status: Status,
    /// Figure and threshold.
    pub message: String,
}

fn bad_value(key: &str, value: &str, why: &str) -> AnalyzeError {
    AnalyzeError::CiConfig(format!("invalid {key} value {value:?}: {why}"))
}

fn ratio(key: &str, value: &str) -> Result<f64, AnalyzeError> {
    let t: f64 = value.parse().map_err(|_| bad_value(key, value, "not a number"))?;
    if !(0.0..=1.0).contains(&t) {
        return Err(bad_value(key, value, "outside the allowed range 0-1"));
    }
    Ok(t)
}

fn is_disabled(v: &str) -> bool {
    matches!(v.trim().to_ascii_lowercase().as_str(), "" | "disabled" | "off" | "false")
}

fn strip_comment(line: &str) -> &str {
    let mut quote = None;
    for (i, c) in line.char_indices() {
        match (c, quote) {
            ('\'' | '"', None) => quote = Some(c),
            (c, Some(q)) if c == q => quote = None,
            ('#', None) if i == 0 || line[..i].ends_with([' ', '\t']) => return &line[..i],
            _ => {}
        }
    }
    line
}

fn unquote(v: &str) -> &str {
    for q in ['"', '\''] {
        if let Some(inner) = v.strip_prefix(q).and_then(|s| s.strip_suffix(q)) {
            return inner;
        }
    }
    v
}

/// Parses a byte size the way dive does (go-humanize `ParseBytes`).
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.' || c == ',')).unwrap_or(s.len());
    let num: f64 = s[..split].replace(',', "").parse().map_err(|_| format!("{s:?} is not a byte size"))?;
    let unit = s[split..].trim().to_ascii_lowercase();
    let mult: f64 = match unit.as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "ki" | "kib" => 1024.0,
        "m" | "mb" => 1e6,
        "mi" | "mib" => 1024f64.powi(2),
        "g" | "gb" => 1e9,
        "gi" | "gib" => 1024f64.powi(3),
        "t" | "tb" => 1e12,
        "ti" | "tib" => 1024f64.powi(4),
        "p" | "pb" => 1e15,
        "pi" | "pib" => 1024f64.powi(5),
        "e" | "eb" => 1e18,
        "ei" | "eib" => 1024f64.powi(6),
        _ => return Err(format!("unknown unit {unit:?} in {s:?}")),
    };
    let v = num * mult;
    if v >= u64::MAX as f64 {
        return Err(format!("{s:?} is too large"));
    }
    Ok(v as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_sizes_like_dive() {
        assert_eq!(parse_bytes("20MB"), Ok(20_000_000));
        assert_eq!(parse_bytes("20MiB"), Ok(20 * 1024 * 1024));
        assert_eq!(parse_bytes("20 mb"), Ok(20_000_000));
        assert_eq!(parse_bytes("1.5k"), Ok(1500));
        assert_eq!(parse_bytes("1,000"), Ok(1000));
        assert_eq!(parse_bytes("42"), Ok(42));
        assert_eq!(parse_bytes("3GiB"), Ok(3 << 30));
        assert!(parse_bytes("20XB").is_err());
        assert!(parse_bytes("MB").is_err());
    }

    #[test]
    fn dive_ci_file() {
        let mut c = CiConfig::default();
        c.apply_dive_ci(
            "# dive CI\nplugins: x\nrules:\n  # the efficiency\n  lowestEfficiency: 0.95 # strict\n  highestWastedBytes: \"20MB\"\n  highestUserWastedPercent: disabled\nother:\n  lowestEfficiency: 0.1\n",
        )
        .unwrap();
        assert_eq!(c.get("lowestEfficiency"), Some("0.95"));
        assert_eq!(c.get("highestWastedBytes"), Some("20MB"));
        assert_eq!(c.get("highestUserWastedPercent"), Some("disabled"));
        assert!(CiConfig::default().apply_dive_ci("rules:\n  lowestEfficency: 0.9\n").is_err());
        assert!(CiConfig::default().apply_dive_ci("rules:\n  nonsense\n").is_err());
    }
}
