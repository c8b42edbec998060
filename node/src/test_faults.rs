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
}

#[cfg(feature = "test-faults")]
static ENABLED: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// Switches `fault` on for the rest of the process.
#[cfg(feature = "test-faults")]
pub fn enable(fault: TestFault) {
    ENABLED.fetch_or(fault as u32, std::sync::atomic::Ordering::SeqCst);
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
