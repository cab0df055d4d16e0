//! The scheduling core: a pure function of (now, saved state, entries) -> actions, so
//! every policy is tested with a virtual clock. The process side ([`super::service`])
//! only carries the actions out and reports when runs end.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::cron::Spec;
use crate::model::schedule::{Missed, Overlap};

/// A firing more than this late (and not followed by a later due one) counts as missed.
pub(crate) const GRACE: Duration = Duration::from_secs(30);
/// At most this many firings wait under `overlap: queue`.
pub(crate) const QUEUE_LIMIT: usize = 10;
/// At most this many fire times are walked in one tick (a per-second cron after a
/// week of downtime); the rest are walked on the following ticks.
const WALK_LIMIT: usize = 100_000;

/// One entry, as the core needs it.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    /// Entry id.
    pub id: String,
    /// When it fires.
    pub spec: Spec,
    /// Overlap policy.
    pub overlap: Overlap,
    /// Missed-run policy.
    pub missed: Missed,
    /// Bound for `missed: all`.
    pub max_missed: usize,
    /// Largest start delay.
    pub jitter: Duration,
}

/// One firing of an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Fire {
    /// Index of the entry.
    pub entry: usize,
    /// The fire time the cron expression gave.
    pub scheduled: DateTime<Utc>,
    /// Whether it is a missed firing being made up.
    pub missed: bool,
}

/// Why a firing does not run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SkipReason {
    /// The previous run is still going (`overlap: skip`).
    Overlap,
    /// `overlap: queue` and the queue is full.
    QueueFull,
}

impl SkipReason {
    /// For logs.
    pub(crate) fn name(self) -> &'static str {
        match self {
            SkipReason::Overlap => "previous run still going",
            SkipReason::QueueFull => "queue full",
        }
    }
}

/// What the process side should do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Action {
    /// Start a run.
    Start(Fire),
    /// End the entry's running run (SIGTERM), then start this one.
    Replace(Fire),
    /// The firing waits for the running one to end.
    Queued(Fire),
    /// The firing does not run.
    Skip(Fire, SkipReason),
    /// Firings were missed (the scheduler was down or the machine asleep).
    Missed {
        /// Index of the entry.
        entry: usize,
        /// How many were missed.
        count: usize,
        /// How many of them will run.
        running: usize,
        /// The policy that decided.
        policy: Missed,
    },
}

#[derive(Debug, Clone)]
struct State {
    last: DateTime<Utc>,
    running: bool,
    queue: VecDeque<Fire>,
}

/// The scheduler's memory: the entries, when each last fired, what runs and waits.
#[derive(Debug, Clone)]
pub(crate) struct Core {
    plans: Vec<Plan>,
    states: Vec<State>,
}

impl Core {
    /// A core for `plans`, resuming from `saved` last fire times (by entry id); an entry
    /// never seen before starts counting at `now`, so it has missed nothing.
    pub(crate) fn new(plans: Vec<Plan>, saved: &HashMap<String, DateTime<Utc>>, now: DateTime<Utc>) -> Core {
        let states = plans
            .iter()
            .map(|plan| State {
                last: saved.get(&plan.id).copied().filter(|t| *t <= now).unwrap_or(now),
                running: false,
                queue: VecDeque::new(),
            })
            .collect();
        Core { plans, states }
    }

    /// When each entry last fired, by id (to be saved).
    pub(crate) fn last_fires(&self) -> HashMap<String, DateTime<Utc>> {
        self.plans.iter().zip(&self.states).map(|(p, s)| (p.id.clone(), s.last)).collect()
    }

    /// When a firing is due: its time plus the entry's jitter for that time.
    pub(crate) fn effective(&self, entry: usize, scheduled: DateTime<Utc>) -> DateTime<Utc> {
        let Some(plan) = self.plans.get(entry) else { return scheduled };
        scheduled + jitter(&plan.id, scheduled, plan.jitter)
    }

    /// When the core next has something to do (the earliest due firing).
    pub(crate) fn next_wake(&self) -> Option<DateTime<Utc>> {
        (0..self.plans.len())
            .filter_map(|i| {
                let next = self.plans[i].spec.next_after(self.states[i].last)?;
                Some(self.effective(i, next))
            })
            .min()
    }

    /// Everything due at `now`.
    pub(crate) fn tick(&mut self, now: DateTime<Utc>) -> Vec<Action> {
        let mut actions = Vec::new();
        for entry in 0..self.plans.len() {
            self.tick_entry(entry, now, &mut actions);
        }
        actions
    }

    fn tick_entry(&mut self, entry: usize, now: DateTime<Utc>, actions: &mut Vec<Action>) {
        let keep = self.plans[entry].max_missed + 1;
        let mut due: VecDeque<DateTime<Utc>> = VecDeque::new();
        let mut count = 0usize;
        let mut t = self.states[entry].last;
        while count < WALK_LIMIT {
            let Some(next) = self.plans[entry].spec.next_after(t) else { break };
            if self.effective(entry, next) > now {
                break;
            }
            if due.len() == keep {
                due.pop_front();
            }
            due.push_back(next);
            count += 1;
            t = next;
        }
        let Some(&latest) = due.back() else { return };
        self.states[entry].last = latest;
        let late = (now - self.effective(entry, latest)).to_std().unwrap_or_default();
        let current = (late <= GRACE).then_some(latest);
        let missed = count - usize::from(current.is_some());
        let plan = &self.plans[entry];
        let mut fires: Vec<Fire> = Vec::new();
        if missed > 0 {
            let older: Vec<DateTime<Utc>> = due.iter().copied().filter(|t| Some(*t) != current).collect();
            let to_run: Vec<DateTime<Utc>> = match plan.missed {
                Missed::None => Vec::new(),
                Missed::Last if current.is_some() => Vec::new(),
                Missed::Last => older.last().copied().into_iter().collect(),
                Missed::All => {
                    let n = older.len().min(plan.max_missed);
                    older[older.len() - n..].to_vec()
                }
            };
            actions.push(Action::Missed { entry, count: missed, running: to_run.len(), policy: plan.missed });
            fires.extend(to_run.into_iter().map(|scheduled| Fire { entry, scheduled, missed: true }));
        }
        fires.extend(current.map(|scheduled| Fire { entry, scheduled, missed: false }));
        for fire in fires {
            self.offer(fire, actions);
        }
    }

    /// Apply the overlap policy to one firing.
    fn offer(&mut self, fire: Fire, actions: &mut Vec<Action>) {
        let overlap = self.plans[fire.entry].overlap;
        let state = &mut self.states[fire.entry];
        if !state.running {
            state.running = true;
            actions.push(Action::Start(fire));
            return;
        }
        // Made-up firings of `missed: all` run one after another, whatever the policy.
        if fire.missed || overlap == Overlap::Queue {
            if state.queue.len() < QUEUE_LIMIT + self.plans[fire.entry].max_missed {
                state.queue.push_back(fire);
                actions.push(Action::Queued(fire));
            } else {
                actions.push(Action::Skip(fire, SkipReason::QueueFull));
            }
            return;
        }
        match overlap {
            Overlap::Skip | Overlap::Queue => actions.push(Action::Skip(fire, SkipReason::Overlap)),
            Overlap::Replace => {
                state.queue.clear();
                actions.push(Action::Replace(fire));
            }
        }
    }

    /// The entry's run ended (or could not start): start the next queued firing, if any.
    pub(crate) fn finished(&mut self, entry: usize) -> Vec<Action> {
        let Some(state) = self.states.get_mut(entry) else { return Vec::new() };
        match state.queue.pop_front() {
            Some(fire) => vec![Action::Start(fire)],
            None => {
                state.running = false;
                Vec::new()
            }
        }
    }

    /// Whether the entry has a run going (as far as the core knows).
    #[cfg(test)]
    pub(crate) fn is_running(&self, entry: usize) -> bool {
        self.states.get(entry).is_some_and(|s| s.running)
    }
}

/// The start delay of a firing: derived from the entry id and the fire time (FNV-1a),
/// so it is spread between entries and machines but the same on every restart.
pub(crate) fn jitter(id: &str, scheduled: DateTime<Utc>, max: Duration) -> chrono::Duration {
    let max_ms = u64::try_from(max.as_millis()).unwrap_or(u64::MAX);
    if max_ms == 0 {
        return chrono::Duration::zero();
    }
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in id.bytes().chain(scheduled.timestamp_millis().to_le_bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    chrono::Duration::milliseconds(i64::try_from(hash % max_ms).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::cron;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).expect("time").with_timezone(&Utc)
    }

    fn plan(cron_text: &str, zone: &str, overlap: Overlap, missed: Missed) -> Plan {
        Plan {
            id: "job".into(),
            spec: cron::parse(cron_text, cron::zone(zone).expect("zone")).expect("cron"),
            overlap,
            missed,
            max_missed: 3,
            jitter: Duration::ZERO,
        }
    }

    fn core(plan: Plan, last: Option<&str>, now: &str) -> Core {
        let saved = last.map(|l| HashMap::from([("job".to_string(), at(l))])).unwrap_or_default();
        Core::new(vec![plan], &saved, at(now))
    }

    fn fire(t: &str, missed: bool) -> Fire {
        Fire { entry: 0, scheduled: at(t), missed }
    }

    #[test]
    fn fires_when_due_and_nothing_early() {
        let mut c =
            core(plan("@every 10s", "UTC", Overlap::Skip, Missed::None), None, "2026-12-01T10:00:01Z");
        assert_eq!(c.next_wake(), Some(at("2026-12-01T10:00:10Z")));
        assert!(c.tick(at("2026-12-01T10:00:09Z")).is_empty());
        assert_eq!(c.tick(at("2026-12-01T10:00:10Z")), [Action::Start(fire("2026-12-01T10:00:10Z", false))]);
        assert!(c.tick(at("2026-12-01T10:00:10Z")).is_empty(), "once only");
        assert_eq!(c.next_wake(), Some(at("2026-12-01T10:00:20Z")));
    }

    #[test]
    fn overlap_skip_queue_replace() {
        let t0 = "2026-12-01T10:00:00Z";
        let mut skip = core(plan("@every 10s", "UTC", Overlap::Skip, Missed::None), None, t0);
        assert!(matches!(skip.tick(at("2026-12-01T10:00:10Z"))[..], [Action::Start(_)]));
        assert_eq!(
            skip.tick(at("2026-12-01T10:00:20Z")),
            [Action::Skip(fire("2026-12-01T10:00:20Z", false), SkipReason::Overlap)]
        );
        assert!(skip.finished(0).is_empty());
        assert!(matches!(skip.tick(at("2026-12-01T10:00:30Z"))[..], [Action::Start(_)]));

        let mut queue = core(plan("@every 10s", "UTC", Overlap::Queue, Missed::None), None, t0);
        queue.tick(at("2026-12-01T10:00:10Z"));
        assert_eq!(
            queue.tick(at("2026-12-01T10:00:20Z")),
            [Action::Queued(fire("2026-12-01T10:00:20Z", false))]
        );
        assert_eq!(queue.finished(0), [Action::Start(fire("2026-12-01T10:00:20Z", false))]);
        assert!(queue.is_running(0));
        assert!(queue.finished(0).is_empty());
        assert!(!queue.is_running(0));

        let mut replace = core(plan("@every 10s", "UTC", Overlap::Replace, Missed::None), None, t0);
        replace.tick(at("2026-12-01T10:00:10Z"));
        assert_eq!(
            replace.tick(at("2026-12-01T10:00:20Z")),
            [Action::Replace(fire("2026-12-01T10:00:20Z", false))]
        );
        assert!(replace.is_running(0));
    }

    #[test]
    fn missed_runs_after_a_restart_per_policy() {
        // Last fired 10:00; down until 10:35; hourly-style every 10 minutes: 10:10..10:30 missed.
        let restart = "2026-12-01T10:35:00Z";
        let last = Some("2026-12-01T10:00:00Z");
        let mut none = core(plan("*/10 * * * *", "UTC", Overlap::Skip, Missed::None), last, restart);
        assert_eq!(
            none.tick(at(restart)),
            [Action::Missed { entry: 0, count: 3, running: 0, policy: Missed::None }]
        );
        assert_eq!(none.next_wake(), Some(at("2026-12-01T10:40:00Z")));

        let mut once = core(plan("*/10 * * * *", "UTC", Overlap::Skip, Missed::Last), last, restart);
        assert_eq!(
            once.tick(at(restart)),
            [
                Action::Missed { entry: 0, count: 3, running: 1, policy: Missed::Last },
                Action::Start(fire("2026-12-01T10:30:00Z", true))
            ]
        );

        // All, bounded to the newest 3 of 5, one after another.
        let long = "2026-12-01T10:55:00Z";
        let mut all = core(plan("*/10 * * * *", "UTC", Overlap::Skip, Missed::All), last, long);
        assert_eq!(
            all.tick(at(long)),
            [
                Action::Missed { entry: 0, count: 5, running: 3, policy: Missed::All },
                Action::Start(fire("2026-12-01T10:30:00Z", true)),
                Action::Queued(fire("2026-12-01T10:40:00Z", true)),
                Action::Queued(fire("2026-12-01T10:50:00Z", true)),
            ]
        );
        assert_eq!(all.finished(0), [Action::Start(fire("2026-12-01T10:40:00Z", true))]);
        assert_eq!(all.finished(0), [Action::Start(fire("2026-12-01T10:50:00Z", true))]);
        assert!(all.finished(0).is_empty());

        // A restart right at a firing: that one is current, the older ones missed.
        let mut at_fire =
            core(plan("*/10 * * * *", "UTC", Overlap::Skip, Missed::Last), last, "2026-12-01T10:30:05Z");
        assert_eq!(
            at_fire.tick(at("2026-12-01T10:30:05Z")),
            [
                Action::Missed { entry: 0, count: 2, running: 0, policy: Missed::Last },
                Action::Start(fire("2026-12-01T10:30:00Z", false))
            ]
        );
    }

    #[test]
    fn jitter_delays_within_the_bound_and_is_stable() {
        let mut p = plan("@every 10m", "UTC", Overlap::Skip, Missed::None);
        p.jitter = Duration::from_secs(60);
        let t = at("2026-12-01T10:10:00Z");
        let delay = jitter("job", t, p.jitter);
        assert!(delay >= chrono::Duration::zero() && delay < chrono::Duration::seconds(60));
        assert_eq!(delay, jitter("job", t, p.jitter));
        let mut c = Core::new(vec![p], &HashMap::new(), at("2026-12-01T10:05:00Z"));
        assert_eq!(c.next_wake(), Some(t + delay));
        if delay > chrono::Duration::zero() {
            assert!(c.tick(t).is_empty(), "not before its jitter");
        }
        assert_eq!(c.tick(t + delay), [Action::Start(fire("2026-12-01T10:10:00Z", false))]);
    }

    #[test]
    fn hourly_in_berlin_over_both_dst_changes_fires_once_per_real_hour() {
        for (start, hours) in [("2026-10-24T20:00:00Z", 8), ("2026-03-28T20:00:00Z", 8)] {
            let mut c = core(plan("0 * * * *", "Europe/Berlin", Overlap::Skip, Missed::None), None, start);
            let mut starts = Vec::new();
            // Wake as the process would: at each next_wake, finishing each run at once.
            while let Some(wake) = c.next_wake() {
                if wake > at(start) + chrono::Duration::hours(hours) {
                    break;
                }
                for action in c.tick(wake) {
                    if let Action::Start(f) = action {
                        starts.push(f.scheduled);
                        c.finished(0);
                    }
                }
            }
            assert_eq!(starts.len(), hours as usize, "{start}: {starts:?}");
            for pair in starts.windows(2) {
                assert_eq!(pair[1] - pair[0], chrono::Duration::hours(1), "{start}: {starts:?}");
            }
        }
    }
}
