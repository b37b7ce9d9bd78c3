//! The open-file limit. Every client connection and every upstream
//! connection is a file descriptor, and the usual soft limit (1024) is far
//! below the default `[limits] max_connections` (10000). At start keygate
//! raises its soft limit to the hard one, as Go programs do by themselves
//! and nginx does with `worker_rlimit_nofile`, and says what it set.

/// Descriptors `max_connections` clients may need: one each, as many
/// upstream connections at most, and some for listeners, Redis and files.
fn wanted(max_connections: usize) -> u64 {
    (max_connections as u64)
        .saturating_mul(2)
        .saturating_add(64)
}

pub fn raise(max_connections: usize) {
    let (soft, hard) = match rlimit::getrlimit(rlimit::Resource::NOFILE) {
        Ok(limits) => limits,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the open-file limit (RLIMIT_NOFILE)");
            return;
        }
    };
    let now = if soft < hard {
        match rlimit::increase_nofile_limit(hard) {
            Ok(now) => {
                tracing::info!(
                    from = soft,
                    to = now,
                    "open-file limit (RLIMIT_NOFILE) raised from {soft} to {now}"
                );
                now
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot raise the open-file limit from {soft} to {hard}");
                soft
            }
        }
    } else {
        soft
    };
    let wanted = wanted(max_connections);
    if now < wanted {
        tracing::warn!(
            limit = now,
            wanted,
            "limits.max_connections = {max_connections} needs about {wanted} open files, the limit is {now}: \
             raise the hard limit (systemd: LimitNOFILE=, docker: --ulimit nofile=) or lower max_connections"
        );
    }
}
