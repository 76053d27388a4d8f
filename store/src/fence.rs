//! The fence: whether this server may write to a shared store, and under which epoch of
//! the leader's lease. With SQLite there is one server and no fence. With Postgres a
//! server writes only while it leads: every write transaction re-reads the lease row
//! `FOR SHARE` and commits only if the row still names this server and its epoch, and
//! writes stop at once, without asking the database, when the lease was not renewed in
//! time (a server paused past its lease finds itself deposed the moment it runs again).

use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::Notify;

/// The check each write transaction makes first.
pub(crate) const CHECK: &str =
    "SELECT epoch FROM cluster_lease WHERE name = 'leader' AND holder = $1 AND epoch = $2 FOR SHARE";

pub use crate::error::NotLeader;

#[derive(Clone)]
pub struct Fence(Arc<Inner>);

struct Inner {
    state: Mutex<State>,
    /// Woken when this server finds it lost the lease.
    lost: Notify,
}

#[derive(Clone)]
enum State {
    /// SQLite: the only server writes.
    Unfenced,
    Follower,
    Leader {
        holder: String,
        epoch: i64,
        valid_until: Instant,
    },
}

impl Fence {
    pub(crate) fn unfenced() -> Fence {
        Fence::with(State::Unfenced)
    }

    pub(crate) fn follower() -> Fence {
        Fence::with(State::Follower)
    }

    fn with(state: State) -> Fence {
        Fence(Arc::new(Inner { state: Mutex::new(state), lost: Notify::new() }))
    }

    /// This server holds the lease as `holder` under `epoch` until `valid_until` (its own
    /// clock: the lease's length less a margin, from when the renewal was sent).
    pub fn lead(&self, holder: &str, epoch: i64, valid_until: Instant) {
        *self.0.state.lock().unwrap() = State::Leader { holder: holder.to_string(), epoch, valid_until };
    }

    /// The epoch this server leads under (0 with SQLite, or when it does not lead).
    pub fn epoch(&self) -> u64 {
        match &*self.0.state.lock().unwrap() {
            State::Leader { epoch, .. } => *epoch as u64,
            _ => 0,
        }
    }

    /// Whether this server may act as the one that drives deployments now.
    pub fn may_act(&self) -> bool {
        self.holder().is_ok()
    }

    /// The lease this server writes under (None with SQLite), or why it may not write.
    pub(crate) fn holder(&self) -> Result<Option<(String, i64)>, NotLeader> {
        match &*self.0.state.lock().unwrap() {
            State::Unfenced => Ok(None),
            State::Follower => {
                Err(NotLeader("this server follows: only the leader writes (see hivemind cluster status)".to_string()))
            }
            State::Leader { holder, epoch, valid_until } => {
                if Instant::now() < *valid_until {
                    Ok(Some((holder.clone(), *epoch)))
                } else {
                    Err(NotLeader(format!(
                        "the lease (epoch {epoch}) was not renewed in time: this server stopped writing"
                    )))
                }
            }
        }
    }

    /// Records that the lease of `epoch` is no longer this server's; returns the error
    /// for the refused write.
    pub(crate) fn lost(&self, epoch: i64) -> NotLeader {
        *self.0.state.lock().unwrap() = State::Follower;
        self.0.lost.notify_waiters();
        NotLeader(format!(
            "the lease (epoch {epoch}) passed to another server: this server no longer leads, and its write was refused"
        ))
    }

    /// Steps down: no write from here on.
    pub fn step_down(&self) {
        let was_leader = matches!(&*self.0.state.lock().unwrap(), State::Leader { .. });
        *self.0.state.lock().unwrap() = State::Follower;
        if was_leader {
            self.0.lost.notify_waiters();
        }
    }

    /// Resolves when a write found the lease gone, or the server stepped down.
    pub async fn lost_lease(&self) {
        self.0.lost.notified().await
    }
}
