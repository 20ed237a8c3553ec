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
//!
//! Sources, each overriding the keys the ones before it set (the CLI applies them in
//! this order): the defaults; a `.dive-ci` file ([`CiConfig::apply_dive_ci`]); the
//! `[inspect.ci]` table of a `pinnace.toml` ([`CiConfig::apply_pinnace_toml`]); a file
//! given with `--ci-config` (`.dive-ci` format); flags ([`CiConfig::set`]).

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

    /// Applies the `[inspect.ci]` table of a `pinnace.toml`; the rest of the file (build
    /// spec, other tables) is not looked at, and a file without the table changes nothing.
    ///
    /// Keys are dive's camelCase (`lowestEfficiency`) or kebab-case
    /// (`lowest-efficiency`); values are strings (`"20MB"`, `"disabled"`), numbers
    /// (`0.95`, `20000000`) or `false` (disabled). Unknown keys, in `[inspect.ci]` or
    /// `[inspect]`, are a misconfiguration, like dive's unknown rules.
    ///
    /// ```
    /// # use pinnace::analyze::ci::CiConfig;
    /// let mut c = CiConfig::default();
    /// c.apply_pinnace_toml("[inspect.ci]\nlowest-efficiency = 0.95\nhighestWastedBytes = \"20MB\"\n")?;
    /// assert_eq!(c.get("lowestEfficiency"), Some("0.95"));
    /// # Ok::<(), pinnace::analyze::AnalyzeError>(())
    /// ```
    pub fn apply_pinnace_toml(&mut self, text: &str) -> Result<(), AnalyzeError> {
        let doc: toml::Table = text.parse().map_err(|e: toml::de::Error| {
            let line = e.span().map_or(1, |r| text[..r.start.min(text.len())].matches('\n').count() + 1);
            AnalyzeError::CiConfig(format!("line {line}: {}", e.message()))
        })?;
        let Some(inspect) = doc.get("inspect") else { return Ok(()) };
        let inspect =
            inspect.as_table().ok_or_else(|| AnalyzeError::CiConfig("`inspect` must be a table ([inspect])".into()))?;
        if let Some(k) = inspect.keys().find(|k| *k != "ci") {
            return Err(AnalyzeError::CiConfig(format!("unknown key inspect.{k} (known: inspect.ci)")));
        }
        let Some(ci) = inspect.get("ci") else { return Ok(()) };
        let ci = ci
            .as_table()
            .ok_or_else(|| AnalyzeError::CiConfig("`inspect.ci` must be a table ([inspect.ci])".into()))?;
        for (key, value) in ci {
            let value = match value {
                toml::Value::String(s) => s.clone(),
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Float(f) => f.to_string(),
                toml::Value::Boolean(false) => "disabled".into(),
                other => {
                    return Err(AnalyzeError::CiConfig(format!(
                        "inspect.ci.{key} is a {}: expected a number, a string such as \"20MB\", or false",
                        other.type_str()
                    )))
                }
            };
            self.set(&camel_case(key), &value)
                .map_err(|e| AnalyzeError::CiConfig(format!("inspect.ci.{key}: {}", strip_prefix(&e))))?;
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

/// `lowest-efficiency` -> `lowestEfficiency`; camelCase keys pass unchanged.
fn camel_case(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    let mut upper = false;
    for c in key.chars() {
        match c {
            '-' => upper = true,
            c if upper => {
                out.push(c.to_ascii_uppercase());
                upper = false;
            }
            c => out.push(c),
        }
    }
    out
}

/// The message of a [`AnalyzeError::CiConfig`] without its `CI configuration: ` prefix.
fn strip_prefix(e: &AnalyzeError) -> String {
    match e {
        AnalyzeError::CiConfig(m) => m.clone(),
        other => other.to_string(),
    }
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

    #[test]
    fn pinnace_toml_table() {
        let mut c = CiConfig::default();
        c.apply_pinnace_toml(
            "binaries = [\"bin/app\"]\n[inspect.ci]\nlowest-efficiency = 0.95\nhighestWastedBytes = \"20MB\"\nhighest-user-wasted-percent = false\nhighest-reclaimable-bytes = 1000\n",
        )
        .unwrap();
        assert_eq!(c.get("lowestEfficiency"), Some("0.95"));
        assert_eq!(c.get("highestWastedBytes"), Some("20MB"));
        assert_eq!(c.get("highestUserWastedPercent"), Some("disabled"));
        assert_eq!(c.get("highestReclaimableBytes"), Some("1000"));
        // No table: nothing changes.
        let mut d = CiConfig::default();
        d.apply_pinnace_toml("user = \"root\"\n").unwrap();
        assert_eq!(d, CiConfig::default());
        // Typos and bad values are misconfigurations.
        let err = |t: &str| CiConfig::default().apply_pinnace_toml(t).unwrap_err().to_string();
        assert!(err("[inspect.ci]\nlowest-eficiency = 0.9\n").contains("inspect.ci.lowest-eficiency: unknown rule"));
        assert!(err("[inspect.cl]\nx = 1\n").contains("unknown key inspect.cl"));
        assert!(err("[inspect.ci]\nlowestEfficiency = true\n").contains("expected a number"));
        assert!(err("x = 1\n[inspect.ci\n").contains("CI configuration: line 2: "));
        assert_eq!(camel_case("highest-user-wasted-percent"), "highestUserWastedPercent");
    }
}
