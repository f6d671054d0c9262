//! How much memory a native value holds, for byte budgets.
//!
//! A value published natively is kept as is (`Arc<T>`), so `size_of::<T>()`
//! says nothing of what it owns: a `Vec<u8>` of 1 MiB is 24 bytes. On a
//! topic with a byte budget the publisher weighs the value once by walking
//! it with [`serde::Serialize`]: the inline size of `T`, plus the length of
//! every string and byte string it reaches, plus the elements of every
//! sequence and map it reaches (they live on the heap), each estimated
//! from what it shows: its primitives by their size, a string or
//! collection by a 24-byte header and its contents, `None` by 8 bytes.
//! The walk allocates nothing and costs about as much as serializing the
//! value to a counting sink; topics without a byte budget never pay it.
//!
//! It is an estimate: padding and spare capacity are not counted, nor
//! what a `Box` or `Arc` outside a collection points to when it is not a
//! string or collection itself (a boxed array reads as an inline one). A
//! value whose `Serialize` fails is weighed by what it showed until then,
//! and one nested more than 1,024 levels deep by what it shows down to
//! there.

use serde::ser::{self, Serialize};

/// The inline size of `T` plus what the value reaches through its fields,
/// as its `Serialize` implementation shows them.
pub(crate) fn weight_of<T: Serialize>(value: &T) -> usize {
    let mut counter = Counter::new();
    // The counter fails only past `MAX_DEPTH`; a value whose `Serialize`
    // fails on its own is weighed by what it showed until then.
    let _ = value.serialize(&mut counter);
    std::mem::size_of::<T>().saturating_add(counter.bytes)
}

/// Sums what lives on the heap: the contents of strings and byte strings,
/// and the elements of sequences and maps. Outside any collection, what a
/// value shows is inline (counted by `size_of`); inside one, primitives,
/// headers and `None`s are estimated too.
struct Counter {
    bytes: usize,
    /// Sequences and maps entered and not yet left.
    heap: usize,
    /// Values entered and not yet left.
    depth: usize,
    /// Whether the walk stopped at `MAX_DEPTH`.
    too_deep: bool,
}

/// The inline size of a `String`, `Vec` or map header.
const HEADER: usize = 24;
/// The inline size counted for a `None` inside a collection.
const NONE: usize = 8;

impl Counter {
    fn new() -> Counter {
        Counter {
            bytes: 0,
            heap: 0,
            depth: 0,
            too_deep: false,
        }
    }

    fn add(&mut self, n: usize) {
        self.bytes = self.bytes.saturating_add(n);
    }

    /// Adds `n` bytes of inline data, which lives on the heap only inside
    /// a collection.
    fn inline(&mut self, n: usize) {
        if self.heap > 0 {
            self.add(n);
        }
    }

    /// Enters a sequence or map (its header is inline data).
    fn enter(&mut self) {
        self.inline(HEADER);
        self.heap += 1;
    }

    fn leave(&mut self) {
        self.heap = self.heap.saturating_sub(1);
    }

    /// Walks what the value holds, one level deeper; a value nested
    /// deeper than [`MAX_DEPTH`] is weighed by what it shows down to it
    /// (walked to the bottom, a million levels overflowed the stack).
    fn child<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), Stopped> {
        if self.depth >= MAX_DEPTH {
            self.too_deep = true;
            return Err(Stopped);
        }
        self.depth += 1;
        let walked = value.serialize(&mut *self);
        self.depth -= 1;
        walked
    }
}

/// How deep the walk goes.
pub(crate) const MAX_DEPTH: usize = 1024;

/// Whether `value` nests more than [`MAX_DEPTH`] levels deep: too deep
/// to walk with serde's recursion on any thread's stack. One walk, as
/// [`weight_of`]'s, that stops there.
pub(crate) fn too_deep<T: Serialize + ?Sized>(value: &T) -> bool {
    let mut counter = Counter::new();
    let _ = value.serialize(&mut counter);
    counter.too_deep
}

/// The walk stopped: the value nests deeper than [`MAX_DEPTH`] (or its
/// own `Serialize` failed).
#[derive(Debug)]
struct Stopped;

impl std::fmt::Display for Stopped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("value nested too deep to weigh")
    }
}

impl std::error::Error for Stopped {}

impl ser::Error for Stopped {
    fn custom<M: std::fmt::Display>(_msg: M) -> Self {
        Stopped
    }
}

macro_rules! primitive {
    ($($method:ident($ty:ty)),* $(,)?) => {
        $(
            fn $method(self, _v: $ty) -> Result<(), Stopped> {
                self.inline(std::mem::size_of::<$ty>());
                Ok(())
            }
        )*
    };
}

impl ser::Serializer for &mut Counter {
    type Ok = ();
    type Error = Stopped;
    type SerializeSeq = Self;
    type SerializeTuple = Self;
    type SerializeTupleStruct = Self;
    type SerializeTupleVariant = Self;
    type SerializeMap = Self;
    type SerializeStruct = Self;
    type SerializeStructVariant = Self;

    primitive! {
        serialize_bool(bool), serialize_i8(i8), serialize_i16(i16), serialize_i32(i32),
        serialize_i64(i64), serialize_i128(i128), serialize_u8(u8), serialize_u16(u16),
        serialize_u32(u32), serialize_u64(u64), serialize_u128(u128), serialize_f32(f32),
        serialize_f64(f64), serialize_char(char),
    }

    fn serialize_str(self, v: &str) -> Result<(), Stopped> {
        self.inline(HEADER);
        self.add(v.len());
        Ok(())
    }

    fn serialize_bytes(self, v: &[u8]) -> Result<(), Stopped> {
        self.inline(HEADER);
        self.add(v.len());
        Ok(())
    }

    fn serialize_none(self) -> Result<(), Stopped> {
        self.inline(NONE);
        Ok(())
    }

    fn serialize_some<T: ?Sized + Serialize>(self, value: &T) -> Result<(), Stopped> {
        self.child(value)
    }

    fn serialize_unit(self) -> Result<(), Stopped> {
        Ok(())
    }

    fn serialize_unit_struct(self, _name: &'static str) -> Result<(), Stopped> {
        Ok(())
    }

    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
    ) -> Result<(), Stopped> {
        Ok(())
    }

    fn serialize_newtype_struct<T: ?Sized + Serialize>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<(), Stopped> {
        self.child(value)
    }

    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        value: &T,
    ) -> Result<(), Stopped> {
        self.child(value)
    }

    fn serialize_seq(self, _len: Option<usize>) -> Result<Self, Stopped> {
        self.enter();
        Ok(self)
    }

    fn serialize_tuple(self, _len: usize) -> Result<Self, Stopped> {
        Ok(self)
    }

    fn serialize_tuple_struct(self, _name: &'static str, _len: usize) -> Result<Self, Stopped> {
        Ok(self)
    }

    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self, Stopped> {
        Ok(self)
    }

    fn serialize_map(self, _len: Option<usize>) -> Result<Self, Stopped> {
        self.enter();
        Ok(self)
    }

    fn serialize_struct(self, _name: &'static str, _len: usize) -> Result<Self, Stopped> {
        Ok(self)
    }

    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self, Stopped> {
        Ok(self)
    }

    fn is_human_readable(&self) -> bool {
        false
    }
}

macro_rules! compound {
    ($($trait:ident :: $method:ident),* $(,)?) => {
        $(
            impl ser::$trait for &mut Counter {
                type Ok = ();
                type Error = Stopped;

                fn $method<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), Stopped> {
                    self.child(value)
                }

                fn end(self) -> Result<(), Stopped> {
                    Ok(())
                }
            }
        )*
    };
}

impl ser::SerializeSeq for &mut Counter {
    type Ok = ();
    type Error = Stopped;

    fn serialize_element<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), Stopped> {
        self.child(value)
    }

    fn end(self) -> Result<(), Stopped> {
        self.leave();
        Ok(())
    }
}

compound! {
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field,
    SerializeTupleVariant::serialize_field,
}

impl ser::SerializeMap for &mut Counter {
    type Ok = ();
    type Error = Stopped;

    fn serialize_key<T: ?Sized + Serialize>(&mut self, key: &T) -> Result<(), Stopped> {
        self.child(key)
    }

    fn serialize_value<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), Stopped> {
        self.child(value)
    }

    fn end(self) -> Result<(), Stopped> {
        self.leave();
        Ok(())
    }
}

macro_rules! named_fields {
    ($($trait:ident),* $(,)?) => {
        $(
            impl ser::$trait for &mut Counter {
                type Ok = ();
                type Error = Stopped;

                fn serialize_field<T: ?Sized + Serialize>(&mut self, _key: &'static str, value: &T) -> Result<(), Stopped> {
                    self.child(value)
                }

                fn end(self) -> Result<(), Stopped> {
                    Ok(())
                }
            }
        )*
    };
}

named_fields!(SerializeStruct, SerializeStructVariant);

/// A weight in four bytes: exact below 2 GiB, in KiB (rounded up) above,
/// saturating at 2 TiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Weight(u32);

const KIB_FLAG: u32 = 1 << 31;

impl Weight {
    pub(crate) fn new(bytes: usize) -> Self {
        match u32::try_from(bytes) {
            Ok(b) if b < KIB_FLAG => Weight(b),
            _ => {
                let kib = bytes.div_ceil(1024).min((KIB_FLAG - 1) as usize) as u32;
                Weight(KIB_FLAG | kib)
            }
        }
    }

    pub(crate) fn get(self) -> usize {
        if self.0 & KIB_FLAG == 0 {
            self.0 as usize
        } else {
            ((self.0 & !KIB_FLAG) as usize).saturating_mul(1024)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weighs_what_a_value_holds() {
        assert_eq!(weight_of(&vec![0u8; 1 << 20]), 24 + (1 << 20));
        assert_eq!(weight_of(&String::from("hello")), 24 + 5);
        assert_eq!(weight_of(&7u64), 8);
        assert_eq!(weight_of(&(1u8, 2u64)), 16, "inline fields count once");
        let nested = vec![vec![1u32; 10]; 3];
        assert_eq!(weight_of(&nested), 24 + 3 * (24 + 10 * 4), "inner headers count");
        assert_eq!(weight_of(&Some("abc")), std::mem::size_of::<Option<&str>>() + 3);
        // Elements that show no data still take their room.
        assert_eq!(weight_of(&vec![String::new(); 1000]), 24 + 1000 * 24);
        assert_eq!(weight_of(&vec![None::<u64>; 1000]), 24 + 1000 * 8);
        let map: std::collections::BTreeMap<u32, String> = [(1, "ab".to_string())].into();
        assert_eq!(weight_of(&map), 24 + 4 + 24 + 2);
    }

    #[test]
    fn weights_keep_four_bytes() {
        for w in [0, 1, 1 << 20, (1 << 31) - 1] {
            assert_eq!(Weight::new(w).get(), w);
        }
        let big = (1usize << 31) + 1;
        assert!(Weight::new(big).get() >= big && Weight::new(big).get() - big < 1024);
        assert!(Weight::new(usize::MAX).get() >= 1 << 40);
    }

    /// A value nested deeper than the walk goes is weighed down to there,
    /// and said to be too deep: walked to the bottom, a million levels
    /// overflowed the stack (a publish to a topic with a byte budget).
    #[test]
    fn a_value_nested_too_deep_is_weighed_down_to_the_limit() {
        let deep = |levels: usize| (0..levels).fold(serde_json::json!([]), |v, _| serde_json::json!([v]));
        let shallow = deep(100);
        assert!(!too_deep(&shallow));
        assert_eq!(
            weight_of(&shallow),
            std::mem::size_of::<serde_json::Value>() + 100 * 24,
            "each array inside one: its header"
        );
        let bottomless = (0..1_000_000).fold(Nested(Vec::new()), |inner, _| Nested(vec![inner]));
        assert!(too_deep(&bottomless));
        let weighed = weight_of(&bottomless);
        assert!(
            ((MAX_DEPTH - 2) * 24..=(MAX_DEPTH + 1) * 24).contains(&weighed),
            "{weighed}"
        );
    }

    /// Vectors in vectors, any depth: dropped without recursion.
    #[derive(serde::Serialize)]
    #[serde(transparent)]
    struct Nested(Vec<Nested>);

    impl Drop for Nested {
        fn drop(&mut self) {
            let mut stack = std::mem::take(&mut self.0);
            while let Some(mut n) = stack.pop() {
                stack.append(&mut n.0);
            }
        }
    }
}
