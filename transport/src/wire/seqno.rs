//! 16-bit serial-number arithmetic, as the kernel's `core.h` (`less_eq`, `more`, `less`).
//!
//! Spec: tipc-protocol.md §4.5. All comparisons are modulo 2^16: `a <= b` iff
//! `(b - a) mod 2^16 < 32768`. [`Seqno`] deliberately does not implement `Ord`: the relation
//! is not transitive over the whole space.

use core::fmt;

/// A 16-bit link (or broadcast, or name-distribution) sequence number.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Seqno(pub u16);

impl Seqno {
    /// `self <= other` in serial arithmetic (`less_eq` in the kernel).
    #[inline]
    pub fn less_eq(self, other: Seqno) -> bool {
        other.0.wrapping_sub(self.0) < 0x8000
    }
    /// `self < other` in serial arithmetic (`less`).
    #[inline]
    pub fn less(self, other: Seqno) -> bool {
        self.less_eq(other) && self != other
    }
    /// `self > other` in serial arithmetic (`more`, defined as `!less_eq`).
    #[inline]
    pub fn more(self, other: Seqno) -> bool {
        !self.less_eq(other)
    }
    /// `self >= other` in serial arithmetic.
    #[inline]
    pub fn more_eq(self, other: Seqno) -> bool {
        !self.less(other)
    }
    /// `self + n`, wrapping.
    #[inline]
    #[allow(clippy::should_implement_trait)]
    pub fn add(self, n: u16) -> Seqno {
        Seqno(self.0.wrapping_add(n))
    }
    /// `self - n`, wrapping.
    #[inline]
    #[allow(clippy::should_implement_trait)]
    pub fn sub(self, n: u16) -> Seqno {
        Seqno(self.0.wrapping_sub(n))
    }
    /// The distance `self - earlier`, wrapping (meaningful when `earlier.less_eq(self)`).
    #[inline]
    pub fn diff(self, earlier: Seqno) -> u16 {
        self.0.wrapping_sub(earlier.0)
    }
    /// The next sequence number.
    #[inline]
    pub fn next(self) -> Seqno {
        self.add(1)
    }
}

impl fmt::Debug for Seqno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

impl fmt::Display for Seqno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl From<u16> for Seqno {
    fn from(v: u16) -> Self {
        Seqno(v)
    }
}
