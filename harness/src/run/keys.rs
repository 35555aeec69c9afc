//! Which key a client takes next: uniform, zipf(s) or hot, from the client's seeded RNG.

use rand::Rng;
use rand_distr::{Distribution, Zipf};

use crate::scenario::{KeyDist, Scenario};

#[derive(Clone, Debug)]
pub enum KeyChooser {
    Uniform(u32),
    Zipf(Zipf<f64>),
    /// `share` of picks go to the first `hot` keys, the rest spread over all `n`.
    Hot {
        n: u32,
        hot: u32,
        share: f64,
    },
}

impl KeyChooser {
    pub fn from_scenario(s: &Scenario) -> KeyChooser {
        let n = s.key_count();
        match *s.keys.distribution.get_ref() {
            KeyDist::Uniform => KeyChooser::Uniform(n),
            KeyDist::Zipf => {
                let exp = s.keys.zipf_s.as_ref().map_or(1.0, |v| *v.get_ref());
                // Validated: n >= 1 and s > 0, which is all Zipf::new asks.
                KeyChooser::Zipf(Zipf::new(n as f64, exp).expect("validated zipf parameters"))
            }
            KeyDist::Hot => KeyChooser::Hot {
                n,
                hot: s.keys.hot_count.as_ref().map_or(1, |v| *v.get_ref()),
                share: s.keys.hot_share.as_ref().map_or(0.9, |v| *v.get_ref()),
            },
        }
    }

    /// The next key's index, in 0..n.
    #[inline]
    pub fn next<R: Rng + ?Sized>(&self, rng: &mut R) -> u32 {
        match self {
            KeyChooser::Uniform(1) => 0,
            KeyChooser::Uniform(n) => rng.random_range(0..*n),
            // Zipf samples 1..=n as a float; rank 1 is the most popular key.
            KeyChooser::Zipf(z) => (z.sample(rng) as u32).saturating_sub(1),
            KeyChooser::Hot { n, hot, share } => {
                if rng.random::<f64>() < *share {
                    rng.random_range(0..*hot)
                } else {
                    rng.random_range(0..*n)
                }
            }
        }
    }
}

/// The name of key `i` as backends see it.
pub fn key_name(i: u32) -> String {
    format!("k{i}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn zipf_favours_low_ranks_and_stays_in_range() {
        let c = KeyChooser::Zipf(Zipf::new(100.0, 1.2).unwrap());
        let mut rng = StdRng::seed_from_u64(7);
        let mut counts = [0u32; 100];
        for _ in 0..10_000 {
            counts[c.next(&mut rng) as usize] += 1;
        }
        assert!(counts[0] > counts[1] && counts[1] > counts[10], "{:?}", &counts[..12]);
    }

    #[test]
    fn hot_keys_get_their_share() {
        let c = KeyChooser::Hot { n: 1000, hot: 2, share: 0.9 };
        let mut rng = StdRng::seed_from_u64(7);
        let hot = (0..10_000).filter(|_| c.next(&mut rng) < 2).count();
        assert!((8_900..9_200).contains(&hot), "{hot}");
    }

    #[test]
    fn same_seed_same_keys() {
        let c = KeyChooser::Uniform(100_000);
        let a: Vec<u32> = (0..100).scan(StdRng::seed_from_u64(3), |r, _| Some(c.next(r))).collect();
        let b: Vec<u32> = (0..100).scan(StdRng::seed_from_u64(3), |r, _| Some(c.next(r))).collect();
        assert_eq!(a, b);
    }
}
