//! Cross-core messaging: each core has one bounded queue per sending core (so every queue has
//! a single producer and keeps that producer's order) and an eventfd to wake it from its
//! poller. A sender wakes the receiver only when it is asleep, so a busy core pays no syscall.
//! Threads that are not cores (the Raft runtime) share one more, unbounded queue: their
//! messages are committed work that cannot be refused.

use crate::core::Msg;
use crate::net::socket::Waker;
use crossbeam_queue::ArrayQueue;
use std::collections::VecDeque;
use std::sync::atomic::{fence, AtomicBool, Ordering};
use std::sync::Mutex;

/// Messages one core may have queued for another; beyond it the sender holds back (and stops
/// reading from its clients) until the receiver catches up.
pub const QUEUE_CAPACITY: usize = 4096;

pub struct Mailbox {
    /// `queues[from]` carries messages from core `from`.
    queues: Vec<ArrayQueue<Msg>>,
    external: Mutex<VecDeque<Msg>>,
    /// Whether `external` may hold messages: one load for the owner to skip the lock.
    external_waiting: AtomicBool,
    waker: Waker,
    sleeping: AtomicBool,
}

impl Mailbox {
    pub fn new(cores: usize) -> std::io::Result<Mailbox> {
        Ok(Mailbox {
            queues: (0..cores)
                .map(|_| ArrayQueue::new(QUEUE_CAPACITY))
                .collect(),
            external: Mutex::new(VecDeque::new()),
            external_waiting: AtomicBool::new(false),
            waker: Waker::new()?,
            sleeping: AtomicBool::new(false),
        })
    }

    /// Queues a message from core `from`; gives it back when the queue is full.
    pub fn push(&self, from: usize, msg: Msg) -> Result<(), Msg> {
        self.queues[from].push(msg)
    }

    /// Queues a message from a thread that is not a core, and wakes the owner if needed.
    pub fn push_external(&self, msg: Msg) {
        self.external
            .lock()
            .expect("no holder panics")
            .push_back(msg);
        self.external_waiting.store(true, Ordering::Release);
        self.notify();
    }

    /// Takes every message queued by threads that are not cores.
    pub fn take_external(&self) -> VecDeque<Msg> {
        if !self.external_waiting.swap(false, Ordering::Acquire) {
            return VecDeque::new();
        }
        std::mem::take(&mut *self.external.lock().expect("no holder panics"))
    }

    /// Wakes the owner if it is (about to be) blocked in its poller. Call after pushing.
    pub fn notify(&self) {
        fence(Ordering::SeqCst);
        if self.sleeping.load(Ordering::Relaxed) {
            self.waker.wake();
        }
    }

    pub fn wake(&self) {
        self.waker.wake();
    }

    pub fn waker_fd(&self) -> i32 {
        use std::os::fd::AsRawFd;
        self.waker.as_raw_fd()
    }

    pub fn drain_waker(&self) {
        self.waker.drain();
    }

    /// Takes the next message from core `from`.
    pub fn pop(&self, from: usize) -> Option<Msg> {
        self.queues[from].pop()
    }

    /// Declares the owner about to block; returns false (and stays awake) if messages are
    /// already waiting. Pairs with the fence in `notify`.
    pub fn prepare_sleep(&self) -> bool {
        self.sleeping.store(true, Ordering::Relaxed);
        fence(Ordering::SeqCst);
        if self.external_waiting.load(Ordering::Relaxed)
            || self.queues.iter().any(|q| !q.is_empty())
        {
            self.sleeping.store(false, Ordering::Relaxed);
            return false;
        }
        true
    }

    pub fn awake(&self) {
        self.sleeping.store(false, Ordering::Relaxed);
    }
}
