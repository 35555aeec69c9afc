//! Durations and duration distributions as scenario files write them.
//!
//! `"250ms"`, `"2s"`, `"1.5s"`, `"100us"`; distributions `"5ms"` (fixed),
//! `"uniform(1ms, 5ms)"`, `"exp(2ms)"` (exponential with that mean). Parse errors
//! are serde errors, so the TOML loader reports them with the line of the field.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use rand::Rng;

/// Serde for a type that is written as a string in scenario files: parsed with
/// `FromStr` (its error message goes into the file:line:col error), written with
/// `Display`.
macro_rules! serde_as_str {
    ($t:ty) => {
        impl<'de> serde::Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                <String as serde::Deserialize>::deserialize(d)?.parse().map_err(serde::de::Error::custom)
            }
        }
        impl serde::Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
    };
}
pub(crate) use serde_as_str;

/// A duration that parses from `"250ms"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Dur(pub Duration);

impl FromStr for Dur {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
        let (num, unit) = s.split_at(split);
        let v: f64 =
            num.parse().map_err(|_| format!("`{s}` is not a duration: write a number and a unit, e.g. \"250ms\""))?;
        let scale = match unit.trim() {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" | "min" => 60.0,
            "h" => 3600.0,
            "" if v == 0.0 => 0.0,
            u => {
                return Err(format!("`{s}`: unknown unit `{u}` (use ns, us, ms, s, m or h)"));
            }
        };
        let secs = v * scale;
        if !secs.is_finite() || secs > 86_400.0 * 365.0 {
            return Err(format!("`{s}` is out of range"));
        }
        Ok(Dur(Duration::from_secs_f64(secs)))
    }
}

impl fmt::Display for Dur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ns = self.0.as_nanos();
        if ns == 0 {
            f.write_str("0s")
        } else if ns % 1_000_000_000 == 0 {
            write!(f, "{}s", ns / 1_000_000_000)
        } else if ns % 1_000_000 == 0 {
            write!(f, "{}ms", ns / 1_000_000)
        } else if ns % 1_000 == 0 {
            write!(f, "{}us", ns / 1_000)
        } else {
            write!(f, "{ns}ns")
        }
    }
}

serde_as_str!(Dur);

/// A distribution of durations, sampled from the run's seeded RNG.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum DurDist {
    Fixed(Duration),
    Uniform(Duration, Duration),
    /// Exponential with this mean.
    Exp(Duration),
}

impl Default for DurDist {
    fn default() -> Self {
        DurDist::Fixed(Duration::ZERO)
    }
}

impl DurDist {
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> Duration {
        match *self {
            DurDist::Fixed(d) => d,
            DurDist::Uniform(lo, hi) => lo + (hi - lo).mul_f64(rng.random::<f64>()),
            DurDist::Exp(mean) => {
                // Inverse CDF; 1 - u is in (0, 1], so ln never sees 0.
                let u: f64 = rng.random();
                mean.mul_f64(-(1.0 - u).ln())
            }
        }
    }
    /// The largest value it can take (exp: its 99.9th percentile).
    pub fn upper(&self) -> Duration {
        match *self {
            DurDist::Fixed(d) => d,
            DurDist::Uniform(_, hi) => hi,
            DurDist::Exp(mean) => mean.mul_f64(6.9),
        }
    }
    pub fn mean(&self) -> Duration {
        match *self {
            DurDist::Fixed(d) => d,
            DurDist::Uniform(lo, hi) => (lo + hi) / 2,
            DurDist::Exp(m) => m,
        }
    }
}

impl FromStr for DurDist {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let args = |name: &str| -> Option<Vec<&str>> {
            s.strip_prefix(name)?
                .trim()
                .strip_prefix('(')?
                .strip_suffix(')')
                .map(|a| a.split(',').map(str::trim).collect())
        };
        if let Some(a) = args("uniform") {
            let [lo, hi] = a[..] else {
                return Err(format!("`{s}`: uniform takes two durations: uniform(1ms, 5ms)"));
            };
            let (lo, hi) = (lo.parse::<Dur>()?.0, hi.parse::<Dur>()?.0);
            if lo > hi {
                return Err(format!("`{s}`: the low end is above the high end"));
            }
            return Ok(DurDist::Uniform(lo, hi));
        }
        if let Some(a) = args("exp") {
            let [m] = a[..] else {
                return Err(format!("`{s}`: exp takes one duration, its mean: exp(2ms)"));
            };
            return Ok(DurDist::Exp(m.parse::<Dur>()?.0));
        }
        s.parse::<Dur>()
            .map(|d| DurDist::Fixed(d.0))
            .map_err(|e| format!("{e}; or a distribution: uniform(1ms, 5ms), exp(2ms)"))
    }
}

impl fmt::Display for DurDist {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            DurDist::Fixed(d) => write!(f, "{}", Dur(d)),
            DurDist::Uniform(a, b) => write!(f, "uniform({}, {})", Dur(a), Dur(b)),
            DurDist::Exp(m) => write!(f, "exp({})", Dur(m)),
        }
    }
}

serde_as_str!(DurDist);

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn durations_parse_and_print() {
        assert_eq!("250ms".parse::<Dur>().unwrap().0, Duration::from_millis(250));
        assert_eq!("1.5s".parse::<Dur>().unwrap().0, Duration::from_millis(1500));
        assert_eq!("0".parse::<Dur>().unwrap().0, Duration::ZERO);
        assert_eq!(Dur(Duration::from_millis(250)).to_string(), "250ms");
        assert!("5".parse::<Dur>().is_err());
        assert!("5xs".parse::<Dur>().unwrap_err().contains("unknown unit"));
    }

    #[test]
    fn distributions_parse_and_stay_in_range() {
        let d: DurDist = "uniform(1ms, 5ms)".parse().unwrap();
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        for _ in 0..1000 {
            let v = d.sample(&mut rng);
            assert!(v >= Duration::from_millis(1) && v <= Duration::from_millis(5));
        }
        let e: DurDist = "exp(2ms)".parse().unwrap();
        let mean = (0..20_000).map(|_| e.sample(&mut rng).as_secs_f64()).sum::<f64>() / 20_000.0;
        assert!((mean - 0.002).abs() < 0.0002, "mean {mean}");
        assert!("uniform(5ms, 1ms)".parse::<DurDist>().is_err());
        assert_eq!(d.to_string(), "uniform(1ms, 5ms)");
    }
}
