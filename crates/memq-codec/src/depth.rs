//! Bounding how deep a decoded value may nest, whatever the format: [`DepthGuard`].
//!
//! A deserializer recurses once per level of the value it reads, so input that nests deeply
//! enough overflows the thread's stack and aborts the process. serde_json stops at 128 levels
//! and rmp-serde counts arrays and maps, but bincode follows the Rust type wherever the input
//! leads (a hundred thousand bytes of `Some` or of a recursive enum variant are a hundred
//! thousand levels), and rmp-serde does not count enum variants. So every serde format this
//! crate decodes goes through the adapter in this module, which counts the levels itself.
//!
//! ## How levels are counted
//!
//! The top-level value is on level 1. A sequence, tuple, map or struct puts its elements,
//! keys, values and fields one level below itself; so do `Some`, a newtype struct, and an
//! enum variant with data (a tuple or struct variant's fields are one level further down,
//! below the variant, as in externally tagged JSON). A container is refused when it opens on
//! the deepest allowed level, before any of its contents is read, even if it turns out empty.
//! With arrays and objects only, this is serde_json's rule: at the default limit of 128, 127
//! nested arrays decode and 128 do not.
//!
//! ## How it works
//!
//! [`Limited`] wraps a deserializer and wraps every visitor it is handed; the wrapped visitor
//! wraps each `SeqAccess`, `MapAccess`, `EnumAccess`, `VariantAccess` and nested
//! deserializer the format gives it, and those wrap every `DeserializeSeed` passed through
//! them, so whatever the format reads next is read through [`Limited`] again, one level lower.
//! Each wrapper carries the number of levels still allowed below it (a copy, not a shared
//! counter: going back up needs no bookkeeping, even on an error path) and a reference to the
//! [`DepthGuard`], which records that the limit was hit so the caller can report a typed
//! error whatever the format made of the message (the message itself, "recursion limit
//! exceeded", is serde_json's for the same condition). The wrappers are a `usize` and a
//! pointer beside the wrapped value, and the only work they add is one comparison per
//! container.
//!
//! The built-in formats read through [`DepthGuard::seed`]; a custom format's deserializer is
//! wrapped with [`DepthGuard::wrap`] by the `ValueSink` it is handed. Types that buffer
//! before they decide what they are (untagged and internally tagged enums, `flatten`) buffer
//! through the wrappers too, so the buffer is no deeper than the limit, and neither is what
//! serde replays from it.

use std::cell::Cell;
use std::error::Error as StdError;
use std::fmt;
#[cfg(any(feature = "bincode", feature = "json", feature = "msgpack"))]
use std::marker::PhantomData;

use serde::de::{
    self, DeserializeSeed, Deserializer, EnumAccess, MapAccess, SeqAccess, VariantAccess, Visitor,
};

use crate::error::{CodecError, ErrorKind};

/// The message the adapter fails with; formats add their own position information to it.
const TOO_DEEP: &str = "recursion limit exceeded";

/// The error for a value nested deeper than `max_depth` levels; `source` is the format's own
/// error, which says where.
#[cold]
pub(crate) fn too_deep<E>(max_depth: usize, source: E) -> CodecError
where
    E: StdError + Send + Sync + 'static,
{
    CodecError::with_source(
        ErrorKind::TooDeep,
        format!("nesting deeper than {max_depth} levels"),
        source,
    )
}

/// How many elements of sequences and maps a decode may read beyond one per byte of its
/// input.
///
/// An element usually costs at least one byte of input, but not always: in bincode a
/// zero-sized value (`()`, a unit struct) or a struct whose fields are all skipped costs
/// nothing, and a custom format may expand its input. Without a count, nine bytes of bincode
/// declaring `u64::MAX` of them would keep a decode busy for ever (or, for skipped fields,
/// grow a `Vec` until memory runs out), and neither other limit would stop it.
pub(crate) const ELEMENT_SLACK: usize = 65_536;

/// How many elements a container takes from the budget at a time. Small, because what the
/// containers open on the way down hold and have not used yet is not available to those
/// below them (32 a level: 4,096 at the default depth limit, well within the slack).
const ELEMENT_CHUNK: usize = 32;

/// One container's share of the element budget, counted down per element and given back
/// when the container is done.
struct Credit<'g> {
    left: usize,
    guard: &'g DepthGuard,
}

impl<'g> Credit<'g> {
    fn new(guard: &'g DepthGuard) -> Self {
        Credit { left: 0, guard }
    }

    /// Counts one element; an error once the decode's budget is spent.
    #[inline]
    fn take<E: de::Error>(&mut self) -> Result<(), E> {
        if self.left == 0 {
            self.left = self.guard.grant()?;
        }
        self.left -= 1;
        Ok(())
    }
}

impl Drop for Credit<'_> {
    fn drop(&mut self) {
        self.guard.refund(self.left);
    }
}

/// Which limit a decode ran into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trip {
    Depth,
    Elements,
}

/// One decode's depth limit and element budgets, and whether a limit was hit.
///
/// Besides the depth, a guard bounds what length fields alone can make a decode do: the
/// elements it reads (see [`ELEMENT_SLACK`]), and the capacity that sequences and maps
/// reserve from their declared lengths. serde reserves up to 1 MiB per container, and a
/// value that nests containers reserves that at every level before the input runs out (a
/// kilobyte of bincode declaring `u64::MAX` replies at each of a hundred levels reserved
/// 63 MiB); the guard hands out at most one element of declared length per byte of input
/// over the whole decode, so what is reserved stays proportional to the input. Containers
/// longer than that (or declared when the budget is spent) grow as they are read.
#[derive(Debug)]
pub(crate) struct DepthGuard {
    max_depth: usize,
    tripped: Cell<Option<Trip>>,
    elements_left: Cell<usize>,
    reserve_left: Cell<usize>,
}

impl DepthGuard {
    /// A guard allowing `max_depth` levels (0 acts as 1: a lone scalar) for decoding
    /// `input_len` bytes.
    pub(crate) fn new(max_depth: usize, input_len: usize) -> Self {
        DepthGuard {
            max_depth,
            tripped: Cell::new(None),
            elements_left: Cell::new(input_len.saturating_add(ELEMENT_SLACK)),
            reserve_left: Cell::new(input_len),
        }
    }

    /// Whether a value passed a limit (the decode's error, if any, is due to that).
    pub(crate) fn tripped(&self) -> bool {
        self.tripped.get().is_some()
    }

    /// The error for the limit that was hit, `source` being the format's own error (which
    /// says where); call only when [`tripped`](Self::tripped).
    #[cold]
    pub(crate) fn error<E>(&self, source: E) -> CodecError
    where
        E: StdError + Send + Sync + 'static,
    {
        match self.tripped.get() {
            Some(Trip::Elements) => CodecError::with_source(
                ErrorKind::TooLarge,
                format!("more elements than one per byte of input and {ELEMENT_SLACK} more"),
                source,
            ),
            _ => too_deep(self.max_depth, source),
        }
    }

    /// The kind of [`error`](Self::error).
    pub(crate) fn error_kind(&self) -> ErrorKind {
        match self.tripped.get() {
            Some(Trip::Elements) => ErrorKind::TooLarge,
            _ => ErrorKind::TooDeep,
        }
    }

    /// Takes up to [`ELEMENT_CHUNK`] elements from the budget for a container to count down
    /// locally (so that a long sequence costs one decrement per element); an error once the
    /// budget is spent.
    #[cold]
    fn grant<E: de::Error>(&self) -> Result<usize, E> {
        let left = self.elements_left.get();
        if left == 0 {
            return Err(self.too_many());
        }
        let granted = left.min(ELEMENT_CHUNK);
        self.elements_left.set(left - granted);
        Ok(granted)
    }

    /// Gives back what a container took and did not use.
    #[inline]
    fn refund(&self, unused: usize) {
        self.elements_left.set(self.elements_left.get() + unused);
    }

    #[cold]
    #[inline(never)]
    fn too_many<E: de::Error>(&self) -> E {
        self.tripped.set(Some(Trip::Elements));
        E::custom("too many elements")
    }

    /// A container's declared length `hint` if the reserve budget still covers it (then it
    /// is spent); otherwise no hint, and the container grows as it is read.
    #[inline]
    fn reserve(&self, hint: Option<usize>) -> Option<usize> {
        let left = self.reserve_left.get();
        let hint = hint.filter(|&h| h <= left)?;
        self.reserve_left.set(left - hint);
        Some(hint)
    }

    /// `deserializer` with the limit applied to the top-level value it reads (for a custom
    /// format's deserializer, whose type the codec never names).
    pub(crate) fn wrap<'de, D: Deserializer<'de>>(&self, deserializer: D) -> Limited<'_, D> {
        Limited {
            inner: deserializer,
            budget: Budget {
                below: self.max_depth.saturating_sub(1),
                guard: self,
            },
        }
    }

    /// A seed reading a `T` with the limit applied: how the built-in formats decode (bincode
    /// 1.3 takes a seed, not a deserializer, where it checks for trailing bytes).
    #[cfg(any(feature = "bincode", feature = "json", feature = "msgpack"))]
    pub(crate) fn seed<T>(&self) -> Seed<'_, PhantomData<T>> {
        Seed {
            inner: PhantomData,
            budget: Budget {
                below: self.max_depth.saturating_sub(1),
                guard: self,
            },
        }
    }
}

/// What a wrapper carries: how many levels may still open below the current value.
#[derive(Clone, Copy)]
struct Budget<'g> {
    below: usize,
    guard: &'g DepthGuard,
}

impl<'g> Budget<'g> {
    /// The budget of the contents of a container opening here, or the error if the container
    /// would pass the limit.
    #[inline]
    fn open<E: de::Error>(self) -> Result<Budget<'g>, E> {
        match self.below.checked_sub(1) {
            Some(below) => Ok(Budget {
                below,
                guard: self.guard,
            }),
            None => Err(self.too_deep()),
        }
    }

    #[cold]
    #[inline(never)]
    fn too_deep<E: de::Error>(self) -> E {
        self.guard.tripped.set(Some(Trip::Depth));
        E::custom(TOO_DEEP)
    }
}

/// A deserializer that reads its value, and everything inside it, within a depth budget.
pub(crate) struct Limited<'g, D> {
    inner: D,
    budget: Budget<'g>,
}

/// A seed whose deserializer is wrapped in [`Limited`] before the seed sees it.
pub(crate) struct Seed<'g, S> {
    inner: S,
    budget: Budget<'g>,
}

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for Seed<'_, S> {
    type Value = S::Value;

    #[inline]
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<S::Value, D::Error> {
        self.inner.deserialize(Limited {
            inner: deserializer,
            budget: self.budget,
        })
    }
}

/// A visitor that wraps whatever nested access the format hands it.
struct Visit<'g, V> {
    inner: V,
    budget: Budget<'g>,
}

/// Generates the `deserialize_*` methods that only pass the (wrapped) visitor on, with the
/// extra arguments each takes.
macro_rules! forward_deserialize {
    ($($method:ident($($arg:ident: $ty:ty),*);)*) => {
        $(
            #[inline]
            fn $method<V: Visitor<'de>>(self, $($arg: $ty,)* visitor: V) -> Result<V::Value, D::Error> {
                self.inner.$method($($arg,)* Visit { inner: visitor, budget: self.budget })
            }
        )*
    };
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for Limited<'_, D> {
    type Error = D::Error;

    forward_deserialize! {
        deserialize_any();
        deserialize_bool();
        deserialize_i8();
        deserialize_i16();
        deserialize_i32();
        deserialize_i64();
        deserialize_i128();
        deserialize_u8();
        deserialize_u16();
        deserialize_u32();
        deserialize_u64();
        deserialize_u128();
        deserialize_f32();
        deserialize_f64();
        deserialize_char();
        deserialize_str();
        deserialize_string();
        deserialize_bytes();
        deserialize_byte_buf();
        deserialize_option();
        deserialize_unit();
        deserialize_unit_struct(name: &'static str);
        deserialize_newtype_struct(name: &'static str);
        deserialize_seq();
        deserialize_tuple(len: usize);
        deserialize_tuple_struct(name: &'static str, len: usize);
        deserialize_map();
        deserialize_struct(name: &'static str, fields: &'static [&'static str]);
        deserialize_enum(name: &'static str, variants: &'static [&'static str]);
        deserialize_identifier();
        deserialize_ignored_any();
    }

    #[inline]
    fn is_human_readable(&self) -> bool {
        self.inner.is_human_readable()
    }
}

/// Generates the visitor methods that take a plain value and have nothing to wrap.
macro_rules! forward_visit {
    ($($method:ident($ty:ty);)*) => {
        $(
            #[inline]
            fn $method<E: de::Error>(self, v: $ty) -> Result<V::Value, E> {
                self.inner.$method(v)
            }
        )*
    };
}

impl<'de, V: Visitor<'de>> Visitor<'de> for Visit<'_, V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.expecting(f)
    }

    forward_visit! {
        visit_bool(bool);
        visit_i8(i8);
        visit_i16(i16);
        visit_i32(i32);
        visit_i64(i64);
        visit_i128(i128);
        visit_u8(u8);
        visit_u16(u16);
        visit_u32(u32);
        visit_u64(u64);
        visit_u128(u128);
        visit_f32(f32);
        visit_f64(f64);
        visit_char(char);
        visit_str(&str);
        visit_borrowed_str(&'de str);
        visit_string(String);
        visit_bytes(&[u8]);
        visit_borrowed_bytes(&'de [u8]);
        visit_byte_buf(Vec<u8>);
    }

    #[inline]
    fn visit_none<E: de::Error>(self) -> Result<V::Value, E> {
        self.inner.visit_none()
    }

    #[inline]
    fn visit_unit<E: de::Error>(self) -> Result<V::Value, E> {
        self.inner.visit_unit()
    }

    #[inline]
    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<V::Value, D::Error> {
        let budget = self.budget.open()?;
        self.inner.visit_some(Limited {
            inner: deserializer,
            budget,
        })
    }

    #[inline]
    fn visit_newtype_struct<D: Deserializer<'de>>(self, deserializer: D) -> Result<V::Value, D::Error> {
        let budget = self.budget.open()?;
        self.inner.visit_newtype_struct(Limited {
            inner: deserializer,
            budget,
        })
    }

    #[inline]
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<V::Value, A::Error> {
        let budget = self.budget.open()?;
        self.inner.visit_seq(Seq {
            inner: seq,
            budget,
            credit: Credit::new(budget.guard),
        })
    }

    #[inline]
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<V::Value, A::Error> {
        let budget = self.budget.open()?;
        self.inner.visit_map(Map {
            inner: map,
            budget,
            credit: Credit::new(budget.guard),
        })
    }

    #[inline]
    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<V::Value, A::Error> {
        // A unit variant is no deeper than a scalar: the level is taken when the variant's
        // data is read.
        self.inner.visit_enum(Enum {
            inner: data,
            budget: self.budget,
        })
    }
}

/// A sequence whose elements are read one level down.
struct Seq<'g, A> {
    inner: A,
    budget: Budget<'g>,
    credit: Credit<'g>,
}

impl<'de, A: SeqAccess<'de>> SeqAccess<'de> for Seq<'_, A> {
    type Error = A::Error;

    #[inline]
    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, A::Error> {
        self.credit.take::<A::Error>()?;
        self.inner.next_element_seed(Seed {
            inner: seed,
            budget: self.budget,
        })
    }

    #[inline]
    fn size_hint(&self) -> Option<usize> {
        self.budget.guard.reserve(self.inner.size_hint())
    }
}

/// A map whose keys and values are read one level down.
struct Map<'g, A> {
    inner: A,
    budget: Budget<'g>,
    credit: Credit<'g>,
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for Map<'_, A> {
    type Error = A::Error;

    #[inline]
    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, A::Error> {
        self.credit.take::<A::Error>()?;
        self.inner.next_key_seed(Seed {
            inner: seed,
            budget: self.budget,
        })
    }

    #[inline]
    fn next_value_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<T::Value, A::Error> {
        self.inner.next_value_seed(Seed {
            inner: seed,
            budget: self.budget,
        })
    }

    #[inline]
    fn next_entry_seed<K, T>(&mut self, key: K, value: T) -> Result<Option<(K::Value, T::Value)>, A::Error>
    where
        K: DeserializeSeed<'de>,
        T: DeserializeSeed<'de>,
    {
        let budget = self.budget;
        self.credit.take::<A::Error>()?;
        self.inner
            .next_entry_seed(Seed { inner: key, budget }, Seed { inner: value, budget })
    }

    #[inline]
    fn size_hint(&self) -> Option<usize> {
        self.budget.guard.reserve(self.inner.size_hint())
    }
}

/// An enum: the variant's name or index is read on the enum's own level, its data below.
struct Enum<'g, A> {
    inner: A,
    budget: Budget<'g>,
}

impl<'de, 'g, A: EnumAccess<'de>> EnumAccess<'de> for Enum<'g, A> {
    type Error = A::Error;
    type Variant = Variant<'g, A::Variant>;

    #[inline]
    fn variant_seed<S: DeserializeSeed<'de>>(self, seed: S) -> Result<(S::Value, Self::Variant), A::Error> {
        let budget = self.budget;
        let (tag, variant) = self.inner.variant_seed(Seed { inner: seed, budget })?;
        Ok((
            tag,
            Variant {
                inner: variant,
                budget,
            },
        ))
    }
}

/// A variant's data, read one level below the enum.
struct Variant<'g, A> {
    inner: A,
    budget: Budget<'g>,
}

impl<'de, A: VariantAccess<'de>> VariantAccess<'de> for Variant<'_, A> {
    type Error = A::Error;

    #[inline]
    fn unit_variant(self) -> Result<(), A::Error> {
        self.inner.unit_variant()
    }

    #[inline]
    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, A::Error> {
        let budget = self.budget.open()?;
        self.inner.newtype_variant_seed(Seed { inner: seed, budget })
    }

    #[inline]
    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, A::Error> {
        // The fields' sequence is a level of its own below the variant, which `visit_seq` takes.
        let budget = self.budget.open()?;
        self.inner.tuple_variant(
            len,
            Visit {
                inner: visitor,
                budget,
            },
        )
    }

    #[inline]
    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, A::Error> {
        let budget = self.budget.open()?;
        self.inner.struct_variant(
            fields,
            Visit {
                inner: visitor,
                budget,
            },
        )
    }
}
