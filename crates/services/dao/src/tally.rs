//! Counting votes: a pure function from a proposal's rules, its electorate
//! as frozen at the snapshot, and the ballots that count (each voter's
//! last) to a result. Integers only — power in whole units, scores in
//! thousandths of a unit — so a tally is the same whatever order the
//! ballots come in, and anyone holding the record recomputes it exactly.
//!
//! Delegation: a member who did not vote lends their power along their
//! delegation chain to the first member on it who did; a member who voted
//! keeps their own (a direct vote overrides a delegation, as in Snapshot
//! and Compound's governor).

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::{Ballot, Quorum, Threshold, VoteOutcome, VotingMethod};

/// Score units per unit of power: weighted and quadratic ballots split a
/// voter's power, and thousandths keep small shares visible.
pub const SCALE: u128 = 1_000;

/// Basis points: 10 000 is the whole.
const WHOLE: u128 = 10_000;

/// One member of the electorate at the snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Elector {
    /// `user:<id>` or `agent:<id>`.
    pub principal: String,
    /// Voting power at the snapshot (1 each, a role's weight, or a
    /// treasury balance).
    pub power: u64,
    /// Whom they delegated to at the snapshot, if anyone.
    pub delegate: Option<String>,
}

/// What a proposal's result depends on besides the ballots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rules {
    pub method: VotingMethod,
    /// How many options (3 for basic: for, against, abstain).
    pub options: usize,
    pub quorum: Quorum,
    pub threshold: Threshold,
}

/// Basic ballots' options, in this order.
pub const FOR: u32 = 0;
pub const AGAINST: u32 = 1;
pub const ABSTAIN: u32 = 2;

/// A count, live or final.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Tally {
    /// Power of the whole electorate at the snapshot.
    pub electorate_power: u64,
    /// Power that took part: voters' own and what was delegated to them
    /// (abstentions included).
    pub turnout_power: u64,
    /// Ballots counted (each voter's last).
    pub ballots: u64,
    /// Score of each option, in thousandths of a unit of power (ranked:
    /// the last round's).
    pub scores: Vec<u64>,
    /// Ranked choice: every round's scores, eliminated options at 0.
    pub rounds: Vec<Vec<u64>>,
    /// The option that won, if one did (basic: 0 when for beat against).
    pub winner: Option<u32>,
    pub quorum_met: bool,
    /// What the proposal comes to if voting ended now.
    pub outcome: VoteOutcome,
}

/// Where each member's power ends up: the voter it counts for, found by
/// following delegations from members who did not vote (a cycle or a
/// chain leaving the electorate counts for nobody).
fn carried<'a>(electorate: &'a [Elector], voted: &HashSet<&str>) -> HashMap<&'a str, u128> {
    let by_name: HashMap<&str, &Elector> = electorate
        .iter()
        .map(|v| (v.principal.as_str(), v))
        .collect();
    let mut resolved: HashMap<&str, Option<&str>> = HashMap::new();
    let mut power: HashMap<&str, u128> = HashMap::new();
    for member in electorate {
        let mut path = Vec::new();
        let mut seen = HashSet::new();
        let mut at = Some(member.principal.as_str());
        let target = loop {
            let Some(name) = at else { break None };
            if let Some(known) = resolved.get(name) {
                break *known;
            }
            if voted.contains(name) {
                break Some(name);
            }
            if !seen.insert(name) {
                break None;
            }
            path.push(name);
            at = by_name
                .get(name)
                .and_then(|v| v.delegate.as_deref())
                .and_then(|d| by_name.get(d).map(|v| v.principal.as_str()));
        };
        for name in path {
            resolved.insert(name, target);
        }
        resolved.insert(member.principal.as_str(), target);
        if let Some(target) = target {
            *power.entry(target).or_default() += u128::from(member.power);
        }
    }
    power
}

fn to_u64(x: u128) -> u64 {
    u64::try_from(x).unwrap_or(u64::MAX)
}

fn isqrt(n: u128) -> u128 {
    if n < 2 {
        return n;
    }
    // Newton's method from above; converges to floor(sqrt(n)).
    let mut x = 1u128 << (128 - n.leading_zeros()).div_ceil(2);
    loop {
        let y = (x + n / x) / 2;
        if y >= x {
            return x;
        }
        x = y;
    }
}

/// The unique highest score, if it is above zero.
fn top(scores: &[u128]) -> Option<u32> {
    let max = *scores.iter().max()?;
    if max == 0 || scores.iter().filter(|s| **s == max).count() > 1 {
        return None;
    }
    scores
        .iter()
        .position(|s| *s == max)
        .and_then(|i| u32::try_from(i).ok())
}

/// Whether `part` of `whole` clears the threshold: a majority is more
/// than half, a supermajority at least its share, a plurality anything.
fn clears(threshold: Threshold, part: u128, whole: u128) -> bool {
    match threshold {
        Threshold::Plurality => part > 0,
        Threshold::Majority => part > 0 && part * 2 > whole,
        Threshold::Supermajority(bp) => part > 0 && part * WHOLE >= whole * u128::from(bp),
    }
}

/// Instant run-off: each round counts every ballot for its highest-ranked
/// option still in, until one holds more than half of what is counted;
/// otherwise every option tied for fewest goes out together (so no order
/// of elimination is arbitrary). A tie among all that remain has no
/// winner.
fn run_off(options: usize, ballots: &[(u128, &[u32])]) -> (Vec<Vec<u128>>, Option<u32>) {
    let mut continuing = vec![true; options];
    let mut rounds = Vec::new();
    loop {
        let mut scores = vec![0u128; options];
        for (power, ranking) in ballots {
            if let Some(&choice) = ranking
                .iter()
                .find(|&&o| continuing.get(o as usize) == Some(&true))
            {
                scores[choice as usize] += power;
            }
        }
        let counted: u128 = scores.iter().sum();
        rounds.push(scores.clone());
        if counted == 0 {
            return (rounds, None);
        }
        if let Some(winner) = scores.iter().position(|s| *s * 2 > counted) {
            return (rounds, u32::try_from(winner).ok());
        }
        let fewest = (0..options)
            .filter(|&o| continuing[o])
            .map(|o| scores[o])
            .min()
            .unwrap_or(0);
        let out: Vec<usize> = (0..options)
            .filter(|&o| continuing[o] && scores[o] == fewest)
            .collect();
        if out.len() == continuing.iter().filter(|c| **c).count() {
            return (rounds, None);
        }
        for o in out {
            continuing[o] = false;
        }
    }
}

/// Counts `ballots` (voter, ballot; one each, already checked against the
/// method) over `electorate` under `rules`.
pub fn count(rules: &Rules, electorate: &[Elector], ballots: &[(String, Ballot)]) -> Tally {
    let voted: HashSet<&str> = ballots.iter().map(|(v, _)| v.as_str()).collect();
    let power = carried(electorate, &voted);
    let electorate_power: u128 = electorate.iter().map(|v| u128::from(v.power)).sum();
    let weight = |voter: &str| power.get(voter).copied().unwrap_or(0);
    let counted: Vec<(u128, &Ballot)> = ballots
        .iter()
        .map(|(voter, ballot)| (weight(voter), ballot))
        .filter(|(w, _)| *w > 0)
        .collect();
    let turnout: u128 = counted.iter().map(|(w, _)| w).sum();
    let n = rules.options;
    let mut scores = vec![0u128; n];
    let mut rounds = Vec::new();
    let add = |scores: &mut Vec<u128>, option: u32, amount: u128| {
        if let Some(s) = scores.get_mut(option as usize) {
            *s += amount;
        }
    };
    for (w, ballot) in &counted {
        match ballot {
            Ballot::Choice(option) => add(&mut scores, *option, w * SCALE),
            Ballot::Approve(options) => {
                for o in options {
                    add(&mut scores, *o, w * SCALE);
                }
            }
            Ballot::Spread(points) => {
                let total: u128 = points.iter().map(|p| u128::from(*p)).sum();
                if total == 0 {
                    continue;
                }
                for (o, p) in points.iter().enumerate() {
                    let share = w * SCALE * SCALE * u128::from(*p) / total;
                    let score = if rules.method == VotingMethod::Quadratic {
                        isqrt(share)
                    } else {
                        share / SCALE
                    };
                    if let Ok(o) = u32::try_from(o) {
                        add(&mut scores, o, score);
                    }
                }
            }
            Ballot::Rank(_) => {}
        }
    }
    let quorum_met = match rules.quorum {
        Quorum::None => true,
        Quorum::Power(min) => turnout >= u128::from(min),
        Quorum::Share(bp) => turnout * WHOLE >= electorate_power * u128::from(bp),
        // Optimistic proposals need no turnout: they pass unless vetoed.
        Quorum::Veto(_) => true,
    };
    let (winner, passes) = match rules.method {
        VotingMethod::Basic => {
            let (yes, no) = (scores[FOR as usize], scores[AGAINST as usize]);
            match rules.quorum {
                Quorum::Veto(bp) => {
                    let vetoed = no * WHOLE >= electorate_power * SCALE * u128::from(bp);
                    (Some(if vetoed { AGAINST } else { FOR }), !vetoed)
                }
                _ => {
                    let passes = clears(rules.threshold, yes, yes + no) && yes > no;
                    let winner = match yes.cmp(&no) {
                        std::cmp::Ordering::Greater => Some(FOR),
                        std::cmp::Ordering::Less => Some(AGAINST),
                        std::cmp::Ordering::Equal => None,
                    };
                    (winner, passes)
                }
            }
        }
        VotingMethod::Ranked => {
            let rankings: Vec<(u128, &[u32])> = counted
                .iter()
                .filter_map(|(w, b)| match b {
                    Ballot::Rank(r) => Some((w * SCALE, r.as_slice())),
                    _ => None,
                })
                .collect();
            let (all, winner) = run_off(n, &rankings);
            if let Some(last) = all.last() {
                scores.clone_from(last);
            }
            let counted: u128 = scores.iter().sum();
            let passes =
                winner.is_some_and(|w| clears(rules.threshold, scores[w as usize], counted));
            rounds = all;
            (winner, passes)
        }
        VotingMethod::Approval => {
            let winner = top(&scores);
            let passes = winner
                .is_some_and(|w| clears(rules.threshold, scores[w as usize], turnout * SCALE));
            (winner, passes)
        }
        VotingMethod::Single | VotingMethod::Weighted | VotingMethod::Quadratic => {
            let winner = top(&scores);
            let total: u128 = scores.iter().sum();
            let passes = winner.is_some_and(|w| clears(rules.threshold, scores[w as usize], total));
            (winner, passes)
        }
    };
    let outcome = if !quorum_met {
        VoteOutcome::Expired
    } else if passes {
        VoteOutcome::Passed
    } else {
        VoteOutcome::Rejected
    };
    Tally {
        electorate_power: to_u64(electorate_power),
        turnout_power: to_u64(turnout),
        ballots: counted.len() as u64,
        scores: scores.into_iter().map(to_u64).collect(),
        rounds: rounds
            .into_iter()
            .map(|r| r.into_iter().map(to_u64).collect())
            .collect(),
        winner,
        quorum_met,
        outcome,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use proptest::prelude::*;

    use super::*;

    fn voter(name: &str, power: u64, delegate: Option<&str>) -> Elector {
        Elector {
            principal: name.into(),
            power,
            delegate: delegate.map(Into::into),
        }
    }

    fn equal(n: usize) -> Vec<Elector> {
        (0..n)
            .map(|i| voter(&format!("user:{i}"), 1, None))
            .collect()
    }

    fn basic(quorum: Quorum, threshold: Threshold) -> Rules {
        Rules {
            method: VotingMethod::Basic,
            options: 3,
            quorum,
            threshold,
        }
    }

    fn ballots(choices: &[(usize, Ballot)]) -> Vec<(String, Ballot)> {
        choices
            .iter()
            .map(|(i, b)| (format!("user:{i}"), b.clone()))
            .collect()
    }

    #[test]
    fn basic_majority_counts_abstentions_toward_quorum_only() {
        let rules = basic(Quorum::Share(5000), Threshold::Majority);
        let electorate = equal(10);
        // 2 for, 1 against, 2 abstain: 5 of 10 took part (quorum met at
        // exactly half), and for beats against.
        let cast = ballots(&[
            (0, Ballot::Choice(FOR)),
            (1, Ballot::Choice(FOR)),
            (2, Ballot::Choice(AGAINST)),
            (3, Ballot::Choice(ABSTAIN)),
            (4, Ballot::Choice(ABSTAIN)),
        ]);
        let tally = count(&rules, &electorate, &cast);
        assert_eq!(tally.turnout_power, 5);
        assert!(tally.quorum_met);
        assert_eq!(tally.outcome, VoteOutcome::Passed);
        assert_eq!(tally.scores, vec![2000, 1000, 2000]);
        // One voter fewer: below the quorum, whatever they chose.
        let tally = count(&rules, &electorate, &cast[..4]);
        assert!(!tally.quorum_met);
        assert_eq!(tally.outcome, VoteOutcome::Expired);
    }

    #[test]
    fn thresholds_have_exact_edges() {
        let electorate = equal(3);
        let two_to_one = ballots(&[
            (0, Ballot::Choice(FOR)),
            (1, Ballot::Choice(FOR)),
            (2, Ballot::Choice(AGAINST)),
        ]);
        let rules = |t| basic(Quorum::None, t);
        // Two thirds is at least 66.66 % but not 66.67 %.
        assert_eq!(
            count(
                &rules(Threshold::Supermajority(6666)),
                &electorate,
                &two_to_one
            )
            .outcome,
            VoteOutcome::Passed
        );
        assert_eq!(
            count(
                &rules(Threshold::Supermajority(6667)),
                &electorate,
                &two_to_one
            )
            .outcome,
            VoteOutcome::Rejected
        );
        // Half is not a majority.
        let even = ballots(&[(0, Ballot::Choice(FOR)), (1, Ballot::Choice(AGAINST))]);
        let tally = count(&rules(Threshold::Majority), &electorate, &even);
        assert_eq!(tally.outcome, VoteOutcome::Rejected);
        assert_eq!(tally.winner, None);
    }

    #[test]
    fn optimistic_proposals_pass_unless_vetoed() {
        let rules = basic(Quorum::Veto(3000), Threshold::Majority);
        let electorate = equal(10);
        assert_eq!(count(&rules, &electorate, &[]).outcome, VoteOutcome::Passed);
        let two_against = ballots(&[(0, Ballot::Choice(AGAINST)), (1, Ballot::Choice(AGAINST))]);
        assert_eq!(
            count(&rules, &electorate, &two_against).outcome,
            VoteOutcome::Passed
        );
        let three_against = ballots(&[
            (0, Ballot::Choice(AGAINST)),
            (1, Ballot::Choice(AGAINST)),
            (2, Ballot::Choice(AGAINST)),
        ]);
        assert_eq!(
            count(&rules, &electorate, &three_against).outcome,
            VoteOutcome::Rejected
        );
    }

    #[test]
    fn delegation_carries_power_to_the_first_voter_on_the_chain() {
        // a → b → c, d → c; only c votes: c carries all four. Then a
        // votes too: a keeps their own, c carries b and d.
        let electorate = vec![
            voter("a", 1, Some("b")),
            voter("b", 2, Some("c")),
            voter("c", 4, None),
            voter("d", 8, Some("c")),
            voter("e", 16, None),
        ];
        let rules = basic(Quorum::None, Threshold::Majority);
        let only_c = vec![("c".to_owned(), Ballot::Choice(FOR))];
        let tally = count(&rules, &electorate, &only_c);
        assert_eq!(tally.turnout_power, 15);
        assert_eq!(tally.scores[FOR as usize], 15_000);
        let with_a = vec![
            ("c".to_owned(), Ballot::Choice(FOR)),
            ("a".to_owned(), Ballot::Choice(AGAINST)),
        ];
        let tally = count(&rules, &electorate, &with_a);
        assert_eq!(tally.scores[FOR as usize], 14_000);
        assert_eq!(tally.scores[AGAINST as usize], 1_000);
        // A cycle (which the store refuses, but a record could hold) counts
        // for nobody.
        let cycle = vec![voter("x", 1, Some("y")), voter("y", 1, Some("x"))];
        assert_eq!(count(&rules, &cycle, &[]).turnout_power, 0);
    }

    #[test]
    fn single_choice_needs_a_unique_top() {
        let rules = Rules {
            method: VotingMethod::Single,
            options: 3,
            quorum: Quorum::None,
            threshold: Threshold::Plurality,
        };
        let electorate = equal(4);
        let tally = count(
            &rules,
            &electorate,
            &ballots(&[
                (0, Ballot::Choice(2)),
                (1, Ballot::Choice(2)),
                (2, Ballot::Choice(0)),
            ]),
        );
        assert_eq!(tally.winner, Some(2));
        assert_eq!(tally.outcome, VoteOutcome::Passed);
        let tie = count(
            &rules,
            &electorate,
            &ballots(&[(0, Ballot::Choice(2)), (1, Ballot::Choice(0))]),
        );
        assert_eq!(tie.winner, None);
        assert_eq!(tie.outcome, VoteOutcome::Rejected);
    }

    #[test]
    fn approval_shares_are_of_those_who_voted() {
        let rules = Rules {
            method: VotingMethod::Approval,
            options: 3,
            quorum: Quorum::None,
            threshold: Threshold::Majority,
        };
        let electorate = equal(3);
        let tally = count(
            &rules,
            &electorate,
            &ballots(&[
                (0, Ballot::Approve(vec![0, 1])),
                (1, Ballot::Approve(vec![1])),
                (2, Ballot::Approve(vec![2])),
            ]),
        );
        assert_eq!(tally.scores, vec![1000, 2000, 1000]);
        assert_eq!(tally.winner, Some(1));
        assert_eq!(tally.outcome, VoteOutcome::Passed);
    }

    #[test]
    fn ranked_choice_runs_off_until_a_majority() {
        // First preferences 2 A, 2 B, 1 C: no majority; C goes out and its
        // ballot moves to B, which then holds 3 of 5.
        let rules = Rules {
            method: VotingMethod::Ranked,
            options: 3,
            quorum: Quorum::None,
            threshold: Threshold::Majority,
        };
        let electorate = equal(5);
        let tally = count(
            &rules,
            &electorate,
            &ballots(&[
                (0, Ballot::Rank(vec![0])),
                (1, Ballot::Rank(vec![0, 1])),
                (2, Ballot::Rank(vec![1, 0])),
                (3, Ballot::Rank(vec![1])),
                (4, Ballot::Rank(vec![2, 1])),
            ]),
        );
        assert_eq!(tally.rounds.len(), 2);
        assert_eq!(tally.rounds[0], vec![2000, 2000, 1000]);
        assert_eq!(tally.rounds[1], vec![2000, 3000, 0]);
        assert_eq!(tally.winner, Some(1));
        assert_eq!(tally.outcome, VoteOutcome::Passed);
    }

    #[test]
    fn weighted_and_quadratic_split_power() {
        let electorate = vec![
            voter("rich", 100, None),
            voter("a", 1, None),
            voter("b", 1, None),
        ];
        let spread = |m| Rules {
            method: m,
            options: 2,
            quorum: Quorum::None,
            threshold: Threshold::Plurality,
        };
        let cast = vec![
            ("rich".to_owned(), Ballot::Spread(vec![1, 0])),
            ("a".to_owned(), Ballot::Spread(vec![0, 1])),
            ("b".to_owned(), Ballot::Spread(vec![1, 3])),
        ];
        let weighted = count(&spread(VotingMethod::Weighted), &electorate, &cast);
        assert_eq!(weighted.scores, vec![100_250, 1_750]);
        // Quadratic: √100 = 10 for the first; √1 + √0.75 for the second.
        let quadratic = count(&spread(VotingMethod::Quadratic), &electorate, &cast);
        assert_eq!(quadratic.scores, vec![10_500, 1_866]);
        assert_eq!(quadratic.winner, Some(0));
    }

    #[test]
    fn integer_square_roots_are_floors() {
        for n in [0u128, 1, 2, 3, 4, 15, 16, 17, 1 << 40, u128::from(u64::MAX)] {
            let r = isqrt(n);
            assert!(r * r <= n && (r + 1) * (r + 1) > n, "{n}");
        }
    }

    fn method() -> impl Strategy<Value = VotingMethod> {
        prop::sample::select(VotingMethod::ALL.to_vec())
    }

    fn ballot_for(method: VotingMethod, options: u32) -> BoxedStrategy<Ballot> {
        let option = 0..options;
        match method {
            VotingMethod::Basic => (0..3u32).prop_map(Ballot::Choice).boxed(),
            VotingMethod::Single => option.prop_map(Ballot::Choice).boxed(),
            VotingMethod::Approval => prop::collection::btree_set(option, 1..=options as usize)
                .prop_map(|s| Ballot::Approve(s.into_iter().collect()))
                .boxed(),
            VotingMethod::Ranked => Just((0..options).collect::<Vec<_>>())
                .prop_shuffle()
                .prop_flat_map(move |all| {
                    (1..=all.len()).prop_map(move |k| Ballot::Rank(all[..k].to_vec()))
                })
                .boxed(),
            VotingMethod::Weighted | VotingMethod::Quadratic => {
                prop::collection::vec(0..20u32, options as usize)
                    .prop_filter("some points", |p| p.iter().any(|x| *x > 0))
                    .prop_map(Ballot::Spread)
                    .boxed()
            }
        }
    }

    /// An electorate of up to 12 with powers and acyclic delegations (each
    /// may delegate only to someone listed after them), and ballots for
    /// some of them.
    fn election() -> impl Strategy<Value = (Rules, Vec<Elector>, Vec<(String, Ballot)>)> {
        method().prop_flat_map(election_of)
    }

    fn election_of(
        method: VotingMethod,
    ) -> impl Strategy<Value = (Rules, Vec<Elector>, Vec<(String, Ballot)>)> {
        (2..5u32, 1..12usize).prop_flat_map(move |(options, n)| {
            let voters = prop::collection::vec((1..50u64, prop::option::of(0..n)), n).prop_map(
                move |spec| {
                    spec.iter()
                        .enumerate()
                        .map(|(i, (power, to))| Elector {
                            principal: format!("user:{i}"),
                            power: *power,
                            delegate: to.filter(|t| *t > i).map(|t| format!("user:{t}")),
                        })
                        .collect::<Vec<_>>()
                },
            );
            let options = if method == VotingMethod::Basic {
                3
            } else {
                options
            };
            let cast = prop::collection::vec((prop::bool::ANY, ballot_for(method, options)), n);
            let quorum = prop_oneof![
                Just(Quorum::None),
                (0..300u64).prop_map(Quorum::Power),
                (0..=10_000u16).prop_map(Quorum::Share),
            ];
            let threshold = prop_oneof![
                Just(Threshold::Plurality),
                Just(Threshold::Majority),
                (5_001..=10_000u16).prop_map(Threshold::Supermajority),
            ];
            (voters, cast, quorum, threshold).prop_map(move |(voters, cast, quorum, threshold)| {
                let ballots = cast
                    .into_iter()
                    .enumerate()
                    .filter(|(_, (votes, _))| *votes)
                    .map(|(i, (_, b))| (format!("user:{i}"), b))
                    .collect();
                let rules = Rules {
                    method,
                    options: options as usize,
                    quorum,
                    threshold,
                };
                (rules, voters, ballots)
            })
        })
    }

    proptest! {
        #[test]
        fn a_tally_does_not_depend_on_the_order_of_ballots(
            (rules, electorate, cast) in election(),
            seed in any::<u64>(),
        ) {
            let before = count(&rules, &electorate, &cast);
            let mut shuffled = cast.clone();
            let mut state = seed | 1;
            for i in (1..shuffled.len()).rev() {
                state ^= state << 13; state ^= state >> 7; state ^= state << 17;
                shuffled.swap(i, (state % (i as u64 + 1)) as usize);
            }
            let mut electorate_shuffled = electorate.clone();
            electorate_shuffled.reverse();
            prop_assert_eq!(&before, &count(&rules, &electorate_shuffled, &shuffled));
        }

        #[test]
        fn delegated_power_is_neither_lost_nor_doubled(
            (rules, electorate, cast) in election(),
        ) {
            let tally = count(&rules, &electorate, &cast);
            // With delegations pointing forward only, a member's power
            // counts exactly when someone on their chain (themselves
            // included) voted.
            let voted: HashSet<&str> = cast.iter().map(|(v, _)| v.as_str()).collect();
            let by: HashMap<&str, &Elector> =
                electorate.iter().map(|v| (v.principal.as_str(), v)).collect();
            let expected: u64 = electorate.iter().filter(|m| {
                let mut at = Some(m.principal.as_str());
                while let Some(name) = at {
                    if voted.contains(name) { return true; }
                    at = by.get(name).and_then(|v| v.delegate.as_deref());
                }
                false
            }).map(|m| m.power).sum();
            prop_assert_eq!(tally.turnout_power, expected);
            prop_assert!(tally.turnout_power <= tally.electorate_power);
        }

        #[test]
        fn quorum_is_met_exactly_from_its_edge(
            (rules, electorate, cast) in election(),
        ) {
            let turnout = count(&rules, &electorate, &cast).turnout_power;
            let at_edge = Rules { quorum: Quorum::Power(turnout), ..rules.clone() };
            prop_assert!(count(&at_edge, &electorate, &cast).quorum_met);
            let past_edge = Rules { quorum: Quorum::Power(turnout + 1), ..rules };
            let tally = count(&past_edge, &electorate, &cast);
            prop_assert!(!tally.quorum_met);
            prop_assert_eq!(tally.outcome, VoteOutcome::Expired);
        }

        #[test]
        fn a_winner_of_a_majority_of_first_preferences_wins_the_run_off(
            (rules, electorate, cast) in election_of(VotingMethod::Ranked),
        ) {
            let tally = count(&rules, &electorate, &cast);
            let first = &tally.rounds[0];
            let counted: u64 = first.iter().sum();
            if let Some(w) = first.iter().position(|s| *s * 2 > counted) {
                prop_assert_eq!(tally.winner, Some(w as u32));
                prop_assert_eq!(tally.rounds.len(), 1);
            }
        }
    }
}
