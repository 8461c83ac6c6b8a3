//! Splitting a red packet's total into its shares, in integer fen, within the channel's limits.
//!
//! Random amounts use the double-mean method: each share is drawn uniformly between the least it
//! may be and twice the mean of what is left, narrowed so that the shares still to come can always
//! stay within the limits; the last share takes the rest. The sum is exact by construction and
//! [`check`] proves it again before anything is stored.

use rand::Rng;

/// The most shares a campaign may have.
pub const MAX_SHARES: i64 = 100_000;

pub use crate::db::money::payouts::PayoutChannel as Channel;
pub use crate::db::money::redpackets::AmountMode;

impl Channel {
    /// The least and the most one share may be, fen.
    pub fn limits(self) -> Limits {
        match self {
            Channel::CashRedPacket => Limits { min_fen: 100, max_fen: 20_000 },
            // A transfer has no documented per-payment ceiling here; 2,000 yuan is where WeChat
            // starts requiring the payee's real name, which a red packet does not carry.
            Channel::Transfer => Limits { min_fen: 10, max_fen: 199_999 },
            Channel::Balance => Limits { min_fen: 1, max_fen: 10_000_000 },
        }
    }
}

/// Per-share limits, fen, inclusive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub min_fen: i64,
    pub max_fen: i64,
}

/// Why a total cannot be split as asked.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SplitError {
    #[error("shares must be 1..={MAX_SHARES}")]
    Shares,
    #[error("total_fen must be positive")]
    Total,
    #[error("{total} fen in {shares} shares gives less than the channel's {min} fen per share")]
    TooLittle { total: i64, shares: i64, min: i64 },
    #[error("{total} fen in {shares} shares needs more than the channel's {max} fen per share")]
    TooMuch { total: i64, shares: i64, max: i64 },
    #[error("{total} fen does not divide into {shares} equal shares")]
    Uneven { total: i64, shares: i64 },
}

/// Checks that `total_fen` can be split into `shares` within `limits` under `mode`.
pub fn feasible(mode: AmountMode, total_fen: i64, shares: i64, limits: Limits) -> Result<(), SplitError> {
    if !(1..=MAX_SHARES).contains(&shares) {
        return Err(SplitError::Shares);
    }
    if total_fen <= 0 {
        return Err(SplitError::Total);
    }
    if total_fen < shares * limits.min_fen {
        return Err(SplitError::TooLittle { total: total_fen, shares, min: limits.min_fen });
    }
    if total_fen > shares * limits.max_fen {
        return Err(SplitError::TooMuch { total: total_fen, shares, max: limits.max_fen });
    }
    if mode == AmountMode::Fixed && total_fen % shares != 0 {
        return Err(SplitError::Uneven { total: total_fen, shares });
    }
    Ok(())
}

/// Splits `total_fen` into `shares` amounts within `limits`.
pub fn split(
    mode: AmountMode,
    total_fen: i64,
    shares: i64,
    limits: Limits,
    rng: &mut impl Rng,
) -> Result<Vec<i64>, SplitError> {
    feasible(mode, total_fen, shares, limits)?;
    if mode == AmountMode::Fixed {
        return Ok(vec![total_fen / shares; shares as usize]);
    }
    let mut out = Vec::with_capacity(shares as usize);
    let mut left = total_fen;
    for remaining in (1..=shares).rev() {
        if remaining == 1 {
            out.push(left);
            break;
        }
        let others = remaining - 1;
        // The others must be able to take what this share leaves, within their limits.
        let low = limits.min_fen.max(left - others * limits.max_fen);
        let high = limits.max_fen.min(left - others * limits.min_fen).min((2 * left / remaining).max(low));
        let amount = if high > low { rng.gen_range(low..=high) } else { low };
        out.push(amount);
        left -= amount;
    }
    Ok(out)
}

/// Proves a split before it is stored: the count, the sum to the fen, every share in limits.
pub fn check(amounts: &[i64], total_fen: i64, shares: i64, limits: Limits) -> bool {
    amounts.len() as i64 == shares
        && amounts.iter().try_fold(0i64, |acc, a| acc.checked_add(*a)) == Some(total_fen)
        && amounts.iter().all(|a| (limits.min_fen..=limits.max_fen).contains(a))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    use super::*;

    fn channel() -> impl Strategy<Value = Channel> {
        prop_oneof![Just(Channel::CashRedPacket), Just(Channel::Transfer), Just(Channel::Balance)]
    }

    proptest! {
        #[test]
        fn random_splits_are_exact_and_within_limits(
            channel in channel(), shares in 1i64..2_000, seed in any::<u64>(), spread in 0u32..=1000,
        ) {
            let limits = channel.limits();
            // Any total between the least and the most the shares can hold.
            let lo = shares * limits.min_fen;
            let hi = shares * limits.max_fen.min(limits.min_fen * 1000);
            let total = lo + (hi - lo) * i64::from(spread) / 1000;
            let amounts = split(AmountMode::Random, total, shares, limits, &mut StdRng::seed_from_u64(seed)).unwrap();
            prop_assert!(check(&amounts, total, shares, limits), "{amounts:?}");
        }

        #[test]
        fn infeasible_totals_are_refused_with_a_reason(channel in channel(), shares in 1i64..500, total in 1i64..200_000) {
            let limits = channel.limits();
            match split(AmountMode::Random, total, shares, limits, &mut StdRng::seed_from_u64(7)) {
                Ok(a) => prop_assert!(check(&a, total, shares, limits)),
                Err(SplitError::TooLittle { .. }) => prop_assert!(total < shares * limits.min_fen),
                Err(SplitError::TooMuch { .. }) => prop_assert!(total > shares * limits.max_fen),
                Err(e) => prop_assert!(false, "unexpected {e}"),
            }
        }

        #[test]
        fn fixed_splits_are_equal_or_refused(shares in 1i64..1_000, each in 1i64..30_000, extra in 0i64..3) {
            let limits = Channel::Balance.limits();
            let total = shares * each + extra;
            match split(AmountMode::Fixed, total, shares, limits, &mut StdRng::seed_from_u64(1)) {
                Ok(a) => {
                    prop_assert_eq!(total % shares, 0);
                    prop_assert!(a.iter().all(|x| *x == total / shares));
                    prop_assert!(check(&a, total, shares, limits));
                }
                Err(e) => {
                    prop_assert_ne!(total % shares, 0);
                    prop_assert_eq!(e, SplitError::Uneven { total, shares });
                }
            }
        }
    }

    #[test]
    fn edges() {
        let red = Channel::CashRedPacket.limits();
        let mut rng = StdRng::seed_from_u64(3);
        // Exactly the minimum and exactly the maximum leave no freedom.
        assert_eq!(split(AmountMode::Random, 300, 3, red, &mut rng).unwrap(), vec![100, 100, 100]);
        assert_eq!(split(AmountMode::Random, 40_000, 2, red, &mut rng).unwrap(), vec![20_000, 20_000]);
        assert_eq!(
            split(AmountMode::Random, 299, 3, red, &mut rng),
            Err(SplitError::TooLittle { total: 299, shares: 3, min: 100 })
        );
        assert_eq!(
            split(AmountMode::Random, 40_001, 2, red, &mut rng),
            Err(SplitError::TooMuch { total: 40_001, shares: 2, max: 20_000 })
        );
        assert_eq!(
            split(AmountMode::Random, 9, 1, Channel::Transfer.limits(), &mut rng).unwrap_err().to_string(),
            "9 fen in 1 shares gives less than the channel's 10 fen per share"
        );
        assert_eq!(split(AmountMode::Random, 100, 0, red, &mut rng), Err(SplitError::Shares));
        assert_eq!(split(AmountMode::Random, 100, MAX_SHARES + 1, red, &mut rng), Err(SplitError::Shares));
        assert!(!check(&[100, 100], 300, 3, red));
        assert!(!check(&[100, 99, 101], 300, 3, red));
    }

    #[test]
    fn random_splits_vary() {
        let mut rng = StdRng::seed_from_u64(11);
        let a = split(AmountMode::Random, 100_000, 100, Channel::CashRedPacket.limits(), &mut rng).unwrap();
        let distinct: std::collections::BTreeSet<_> = a.iter().collect();
        assert!(distinct.len() > 50, "{a:?}");
    }
}
