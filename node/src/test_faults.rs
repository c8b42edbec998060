//! Deliberate bugs that prove the simulation's checks can fail. They exist
//! only in builds with the `test-faults` feature (debug builds of the
//! simulation's proof tests); each is off until a test switches it on, so
//! one proof runs with exactly the bug it is about. Without the feature
//! `enabled` is constant false and the faulty paths compile away.

/// One deliberate bug.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum TestFault {
    /// Log appends are acknowledged as flushed but never synced.
    AckBeforeSync = 1 << 0,
    /// The peer channel ignores incarnations: a member whose data directory
    /// was emptied votes and takes entries under its old id.
    IgnoreIncarnation = 1 << 1,
    /// A node campaigns as soon as it starts, though a lease it helped
    /// grant before it stopped may still live.
    CampaignInsideLease = 1 << 2,
    /// Linearizable and lease reads skip the read barrier and answer from
    /// whatever this replica holds, as a stale read would.
    ReadsWithoutBarrier = 1 << 3,
}

/// The environment variable that names the bugs a node built with the
/// feature switches on at start (comma-separated, e.g. `reads-without-barrier`).
pub const TEST_FAULTS_ENV: &str = "SAFEKEEP_TEST_FAULTS";

impl TestFault {
    /// Every deliberate bug.
    pub const ALL: [TestFault; 4] = [
        TestFault::AckBeforeSync,
        TestFault::IgnoreIncarnation,
        TestFault::CampaignInsideLease,
        TestFault::ReadsWithoutBarrier,
    ];

    /// The bug's name in `SAFEKEEP_TEST_FAULTS`.
    pub fn name(self) -> &'static str {
        match self {
            TestFault::AckBeforeSync => "ack-before-sync",
            TestFault::IgnoreIncarnation => "ignore-incarnation",
            TestFault::CampaignInsideLease => "campaign-inside-lease",
            TestFault::ReadsWithoutBarrier => "reads-without-barrier",
        }
    }

    /// The bug called `name`, if there is one.
    pub fn from_name(name: &str) -> Option<TestFault> {
        TestFault::ALL.into_iter().find(|fault| fault.name() == name)
    }
}

#[cfg(feature = "test-faults")]
static ENABLED: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// Switches `fault` on for the rest of the process.
#[cfg(feature = "test-faults")]
pub fn enable(fault: TestFault) {
    ENABLED.fetch_or(fault as u32, std::sync::atomic::Ordering::SeqCst);
}

/// Switches on every bug `names` lists (comma-separated), or says which
/// name is unknown. An empty list switches nothing on.
#[cfg(feature = "test-faults")]
pub fn enable_named(names: &str) -> Result<Vec<TestFault>, String> {
    let mut enabled = Vec::new();
    for name in names.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let fault = TestFault::from_name(name).ok_or_else(|| {
            let known: Vec<&str> = TestFault::ALL.iter().map(|f| f.name()).collect();
            format!("unknown test fault '{name}'; one of: {}", known.join(", "))
        })?;
        enable(fault);
        enabled.push(fault);
    }
    Ok(enabled)
}

/// Whether `fault` is on.
pub fn enabled(fault: TestFault) -> bool {
    #[cfg(feature = "test-faults")]
    {
        ENABLED.load(std::sync::atomic::Ordering::SeqCst) & fault as u32 != 0
    }
    #[cfg(not(feature = "test-faults"))]
    {
        let _ = fault;
        false
    }
}
