//! Reading a native value as another type: only the conversions that lose
//! nothing.
//!
//! A value published natively and read as its own type is cloned. Read as
//! another type, it converts only when it is made of scalars (numbers,
//! `bool`, `char`, text, bytes; behind `&`, `Box`, `Arc` or a newtype,
//! though never as another newtype; in
//! options, sequences and tuples) and the target holds every one exactly:
//! `&str` as `String`, `i32` as `i64` or `f64`, `u64` as `u32` when it
//! fits, `f32` as `f64`, `Vec<u8>` as `Vec<u16>`, `(i32, i32)` as
//! `(i64, i64)`. Everything else (structs and enums, even of the same
//! shape or from a tuple of their fields; maps; bytes as text and text as
//! bytes; a sequence with repeats as a set; more than 128 levels of
//! nesting; `u128::MAX` as `f64`; `0.1f64` as `f32`) is a type mismatch
//! naming both types: no silent reinterpretation, no lossy round trip.

use std::fmt;

use serde::de::{self, DeserializeOwned, Visitor};
use serde::ser::{self, Impossible, Serialize};

/// A native value reduced to one scalar.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Scalar {
    Bool(bool),
    I64(i64),
    U64(u64),
    I128(i128),
    U128(u128),
    F32(f32),
    F64(f64),
    Char(char),
    Str(String),
    Bytes(Vec<u8>),
    None,
    Some(Box<Scalar>),
    /// A sequence or tuple.
    Seq(Vec<Scalar>),
    /// A sequence or tuple of unsigned integers that all fit in a byte,
    /// one byte each (a `Vec<u8>` of 1 MiB held as `Seq` took 32 MiB):
    /// read exactly as the `Seq` of `U64` it stands for.
    SmallUints(Vec<u8>),
    /// A newtype (`Meters(f64)`) and its content: read as its content, or
    /// as a newtype of the same name, never as another newtype.
    Newtype(&'static str, Box<Scalar>),
}

impl Scalar {
    /// What a newtype holds (through every layer); any other scalar as is.
    fn content(self) -> Scalar {
        match self {
            Scalar::Newtype(_, v) => v.content(),
            other => other,
        }
    }
}

/// Why a conversion did not happen (serde's plumbing; the caller reports
/// a type mismatch with both type names).
#[derive(Debug)]
pub(crate) struct NotScalar(String);

impl fmt::Display for NotScalar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NotScalar {}

impl ser::Error for NotScalar {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        NotScalar(msg.to_string())
    }
}

impl de::Error for NotScalar {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        NotScalar(msg.to_string())
    }
}

/// How deeply options, newtypes and sequences may nest in a value that
/// converts: deeper is refused before it could exhaust the stack (a
/// native value nested 10,000 levels deep, read as another type).
const MAX_DEPTH: u32 = 128;

/// `value` as one scalar, or why it is not one.
pub(crate) fn scalar_of<V: Serialize + ?Sized>(value: &V) -> Result<Scalar, NotScalar> {
    value.serialize(ScalarSerializer { depth: 0 })
}

/// Reads `scalar` as a `T`, when `T` holds it exactly.
pub(crate) fn read_scalar<T: DeserializeOwned>(scalar: Scalar) -> Result<T, NotScalar> {
    T::deserialize(ScalarDeserializer(scalar))
}

/// Refuses a sequence that repeats an element to a set's visitor: the set
/// would keep one and drop the others silently. A set's visitor is known
/// by its type's name (serde's for `HashSet` and `BTreeSet`, and those of
/// `hashbrown` and `indexmap`, have the set in it; names are best effort,
/// so a set named otherwise is not recognized).
fn refuse_repeats_in_a_set<'de, V: Visitor<'de>>(seq: &Scalar) -> Result<(), NotScalar> {
    let name = std::any::type_name::<V>();
    // What comes after is the visitor and its type arguments (a `Vec`'s
    // elements may be sets: that is not the `Vec`'s concern). Before it,
    // the type the visitor builds, its parameters written `_`
    // (`<impl Deserialize for HashSet<_, _>>`).
    let owner = name.split("::deserialize::").next().unwrap_or(name);
    match owner.contains("Set<_") && repeats_an_element(seq) {
        true => Err(NotScalar(
            "a sequence that repeats an element is not a set: the repeats would be dropped".into(),
        )),
        false => Ok(()),
    }
}

/// Whether the sequence `seq` (bytes included) holds two equal elements.
fn repeats_an_element(seq: &Scalar) -> bool {
    fn sorted_has_pair<E, F: Fn(&E, &E) -> std::cmp::Ordering>(mut items: Vec<E>, cmp: F) -> bool {
        items.sort_by(&cmp);
        items.windows(2).any(|w| cmp(&w[0], &w[1]).is_eq())
    }
    match seq {
        Scalar::Bytes(v) | Scalar::SmallUints(v) => sorted_has_pair(v.iter().collect(), |a, b| a.cmp(b)),
        Scalar::Seq(v) => sorted_has_pair(v.iter().collect(), |a, b| order(a, b)),
        _ => false,
    }
}

/// A total order on scalars in which equal means equal as values: floats
/// by value with every NaN one value and `-0.0` equal to `0.0`.
fn order(a: &Scalar, b: &Scalar) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    fn rank(s: &Scalar) -> u8 {
        match s {
            Scalar::Bool(_) => 0,
            Scalar::I64(_) => 1,
            Scalar::U64(_) => 2,
            Scalar::I128(_) => 3,
            Scalar::U128(_) => 4,
            Scalar::F32(_) => 5,
            Scalar::F64(_) => 6,
            Scalar::Char(_) => 7,
            Scalar::Str(_) => 8,
            Scalar::Bytes(_) => 9,
            Scalar::None => 10,
            Scalar::Some(_) => 11,
            Scalar::Seq(_) | Scalar::SmallUints(_) => 12,
            Scalar::Newtype(..) => 13,
        }
    }
    fn float(v: f64) -> f64 {
        if v.is_nan() {
            f64::NAN
        } else if v == 0.0 {
            0.0 // -0.0 too
        } else {
            v
        }
    }
    /// A sequence's elements, packed or not, each as the scalar it is.
    fn elements(s: &Scalar) -> impl Iterator<Item = std::borrow::Cow<'_, Scalar>> {
        let (any, small): (&[Scalar], &[u8]) = match s {
            Scalar::Seq(v) => (v, &[]),
            Scalar::SmallUints(v) => (&[], v),
            _ => (&[], &[]),
        };
        let small = small
            .iter()
            .map(|b| std::borrow::Cow::Owned(Scalar::U64(u64::from(*b))));
        any.iter().map(std::borrow::Cow::Borrowed).chain(small)
    }
    match (a, b) {
        (Scalar::Bool(x), Scalar::Bool(y)) => x.cmp(y),
        (Scalar::I64(x), Scalar::I64(y)) => x.cmp(y),
        (Scalar::U64(x), Scalar::U64(y)) => x.cmp(y),
        (Scalar::I128(x), Scalar::I128(y)) => x.cmp(y),
        (Scalar::U128(x), Scalar::U128(y)) => x.cmp(y),
        (Scalar::F32(x), Scalar::F32(y)) => float(f64::from(*x)).total_cmp(&float(f64::from(*y))),
        (Scalar::F64(x), Scalar::F64(y)) => float(*x).total_cmp(&float(*y)),
        (Scalar::Char(x), Scalar::Char(y)) => x.cmp(y),
        (Scalar::Str(x), Scalar::Str(y)) => x.cmp(y),
        (Scalar::Bytes(x), Scalar::Bytes(y)) => x.cmp(y),
        (Scalar::Some(x), Scalar::Some(y)) => order(x, y),
        (Scalar::SmallUints(x), Scalar::SmallUints(y)) => x.cmp(y),
        (x @ (Scalar::Seq(_) | Scalar::SmallUints(_)), y @ (Scalar::Seq(_) | Scalar::SmallUints(_))) => {
            let (mut x, mut y) = (elements(x), elements(y));
            loop {
                match (x.next(), y.next()) {
                    (Some(a), Some(b)) => match order(&a, &b) {
                        Ordering::Equal => {}
                        unequal => return unequal,
                    },
                    (a, b) => return a.is_some().cmp(&b.is_some()),
                }
            }
        }
        (Scalar::Newtype(m, x), Scalar::Newtype(n, y)) => m.cmp(n).then_with(|| order(x, y)),
        (Scalar::None, Scalar::None) => Ordering::Equal,
        // Different kinds: every pair of the same rank was matched above.
        (x, y) => rank(x).cmp(&rank(y)),
    }
}

fn not_scalar(what: &str) -> NotScalar {
    NotScalar(format!("{what} is not a single scalar"))
}

/// A struct, tuple struct, unit struct or enum named `name`: a target
/// scalars are never read as.
fn not_from_scalars(name: &str) -> NotScalar {
    NotScalar(format!("a {name} is not read from scalars"))
}

/// Reduces a value to a [`Scalar`]; `depth` counts the options, newtypes
/// and sequences around the value it is given.
struct ScalarSerializer {
    depth: u32,
}

impl ScalarSerializer {
    /// The serializer for what this one's value holds.
    fn inner(&self) -> Result<ScalarSerializer, NotScalar> {
        match self.depth < MAX_DEPTH {
            true => Ok(ScalarSerializer {
                depth: self.depth + 1,
            }),
            false => Err(NotScalar(format!(
                "a value nested more than {MAX_DEPTH} levels deep"
            ))),
        }
    }
}

impl ser::Serializer for ScalarSerializer {
    type Ok = Scalar;
    type Error = NotScalar;
    type SerializeSeq = SeqOfScalars;
    type SerializeTuple = SeqOfScalars;
    type SerializeTupleStruct = Impossible<Scalar, NotScalar>;
    type SerializeTupleVariant = Impossible<Scalar, NotScalar>;
    type SerializeMap = Impossible<Scalar, NotScalar>;
    type SerializeStruct = Impossible<Scalar, NotScalar>;
    type SerializeStructVariant = Impossible<Scalar, NotScalar>;

    fn serialize_bool(self, v: bool) -> Result<Scalar, NotScalar> {
        Ok(Scalar::Bool(v))
    }
    fn serialize_i8(self, v: i8) -> Result<Scalar, NotScalar> {
        Ok(Scalar::I64(v.into()))
    }
    fn serialize_i16(self, v: i16) -> Result<Scalar, NotScalar> {
        Ok(Scalar::I64(v.into()))
    }
    fn serialize_i32(self, v: i32) -> Result<Scalar, NotScalar> {
        Ok(Scalar::I64(v.into()))
    }
    fn serialize_i64(self, v: i64) -> Result<Scalar, NotScalar> {
        Ok(Scalar::I64(v))
    }
    /// As a 64-bit scalar when it fits, so that it narrows (and reads as
    /// a float) as every other integer does.
    fn serialize_i128(self, v: i128) -> Result<Scalar, NotScalar> {
        Ok(match (i64::try_from(v), u64::try_from(v)) {
            (Ok(small), _) => Scalar::I64(small),
            (_, Ok(small)) => Scalar::U64(small),
            _ => Scalar::I128(v),
        })
    }
    fn serialize_u8(self, v: u8) -> Result<Scalar, NotScalar> {
        Ok(Scalar::U64(v.into()))
    }
    fn serialize_u16(self, v: u16) -> Result<Scalar, NotScalar> {
        Ok(Scalar::U64(v.into()))
    }
    fn serialize_u32(self, v: u32) -> Result<Scalar, NotScalar> {
        Ok(Scalar::U64(v.into()))
    }
    fn serialize_u64(self, v: u64) -> Result<Scalar, NotScalar> {
        Ok(Scalar::U64(v))
    }
    /// As a 64-bit scalar when it fits (see `serialize_i128`).
    fn serialize_u128(self, v: u128) -> Result<Scalar, NotScalar> {
        Ok(u64::try_from(v).map_or(Scalar::U128(v), Scalar::U64))
    }
    fn serialize_f32(self, v: f32) -> Result<Scalar, NotScalar> {
        Ok(Scalar::F32(v))
    }
    fn serialize_f64(self, v: f64) -> Result<Scalar, NotScalar> {
        Ok(Scalar::F64(v))
    }
    fn serialize_char(self, v: char) -> Result<Scalar, NotScalar> {
        Ok(Scalar::Char(v))
    }
    fn serialize_str(self, v: &str) -> Result<Scalar, NotScalar> {
        Ok(Scalar::Str(v.to_owned()))
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<Scalar, NotScalar> {
        Ok(Scalar::Bytes(v.to_vec()))
    }
    fn serialize_none(self) -> Result<Scalar, NotScalar> {
        Ok(Scalar::None)
    }
    fn serialize_some<V: Serialize + ?Sized>(self, v: &V) -> Result<Scalar, NotScalar> {
        Ok(Scalar::Some(Box::new(v.serialize(self.inner()?)?)))
    }
    fn serialize_unit(self) -> Result<Scalar, NotScalar> {
        Err(not_scalar("()"))
    }
    fn serialize_unit_struct(self, name: &'static str) -> Result<Scalar, NotScalar> {
        Err(not_scalar(name))
    }
    fn serialize_unit_variant(
        self,
        name: &'static str,
        _: u32,
        _: &'static str,
    ) -> Result<Scalar, NotScalar> {
        Err(not_scalar(name))
    }
    // A newtype (`Meters(f64)`) reads as its content, like `Arc` and
    // `Box`; its name is kept so that it never reads as another newtype
    // (`Feet(f64)`: the mix-up newtypes exist to prevent).
    fn serialize_newtype_struct<V: Serialize + ?Sized>(
        self,
        name: &'static str,
        v: &V,
    ) -> Result<Scalar, NotScalar> {
        Ok(Scalar::Newtype(name, Box::new(v.serialize(self.inner()?)?)))
    }
    fn serialize_newtype_variant<V: Serialize + ?Sized>(
        self,
        name: &'static str,
        _: u32,
        _: &'static str,
        _: &V,
    ) -> Result<Scalar, NotScalar> {
        Err(not_scalar(name))
    }
    fn serialize_seq(self, len: Option<usize>) -> Result<Self::SerializeSeq, NotScalar> {
        Ok(SeqOfScalars::new(self.inner()?, len.unwrap_or(0)))
    }
    fn serialize_tuple(self, len: usize) -> Result<Self::SerializeTuple, NotScalar> {
        Ok(SeqOfScalars::new(self.inner()?, len))
    }
    fn serialize_tuple_struct(
        self,
        name: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleStruct, NotScalar> {
        Err(not_scalar(name))
    }
    fn serialize_tuple_variant(
        self,
        name: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, NotScalar> {
        Err(not_scalar(name))
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, NotScalar> {
        Err(not_scalar("a map"))
    }
    fn serialize_struct(self, name: &'static str, _: usize) -> Result<Self::SerializeStruct, NotScalar> {
        Err(not_scalar(name))
    }
    fn serialize_struct_variant(
        self,
        name: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, NotScalar> {
        Err(not_scalar(name))
    }
}

/// The elements of a sequence or tuple, each made of scalars: one byte
/// each while every one is an unsigned integer below 256, a [`Scalar`]
/// each from the first that is not.
pub(crate) struct SeqOfScalars {
    /// Serializes the elements.
    elements: ScalarSerializer,
    /// The length the value's `Serialize` announced (a hint: bounded).
    len: usize,
    small: Vec<u8>,
    /// Empty until an element is not a small unsigned integer.
    any: Vec<Scalar>,
}

impl SeqOfScalars {
    fn new(elements: ScalarSerializer, len: usize) -> SeqOfScalars {
        SeqOfScalars {
            elements,
            len: len.min(1 << 24),
            small: Vec::new(),
            any: Vec::new(),
        }
    }
}

impl ser::SerializeSeq for SeqOfScalars {
    type Ok = Scalar;
    type Error = NotScalar;
    fn serialize_element<V: Serialize + ?Sized>(&mut self, v: &V) -> Result<(), NotScalar> {
        let element = v.serialize(ScalarSerializer {
            depth: self.elements.depth,
        })?;
        match element {
            Scalar::U64(small @ 0..=255) if self.any.is_empty() => {
                // Room for all of them at the first: a sequence of other
                // elements allocates none.
                if self.small.capacity() == 0 {
                    self.small.reserve(self.len);
                }
                self.small.push(small as u8)
            }
            element => {
                if self.any.is_empty() {
                    let small = std::mem::take(&mut self.small);
                    self.any.reserve(self.len.min(4096).max(small.len() + 1));
                    self.any.extend(small.into_iter().map(|b| Scalar::U64(b.into())));
                }
                self.any.push(element);
            }
        }
        Ok(())
    }
    fn end(self) -> Result<Scalar, NotScalar> {
        Ok(match (self.any.is_empty(), self.small.is_empty()) {
            (true, false) => Scalar::SmallUints(self.small),
            _ => Scalar::Seq(self.any),
        })
    }
}

impl ser::SerializeTuple for SeqOfScalars {
    type Ok = Scalar;
    type Error = NotScalar;
    fn serialize_element<V: Serialize + ?Sized>(&mut self, v: &V) -> Result<(), NotScalar> {
        ser::SerializeSeq::serialize_element(self, v)
    }
    fn end(self) -> Result<Scalar, NotScalar> {
        ser::SerializeSeq::end(self)
    }
}

/// Hands a sequence's elements to a visitor, one deserializer each.
struct Elements<I>(I);

impl<'de, I: ExactSizeIterator<Item = Scalar>> de::SeqAccess<'de> for Elements<I> {
    type Error = NotScalar;
    fn next_element_seed<S: de::DeserializeSeed<'de>>(
        &mut self,
        seed: S,
    ) -> Result<Option<S::Value>, NotScalar> {
        match self.0.next() {
            Some(s) => seed.deserialize(ScalarDeserializer(s)).map(Some),
            None => Ok(None),
        }
    }
    fn size_hint(&self) -> Option<usize> {
        Some(self.0.len())
    }
}

/// Hands one scalar to a visitor as what it is; serde's own visitors then
/// check ranges (an `i64` of 300 is not a `u8`) and refuse other kinds (a
/// float is not an integer). Floats asked for are given only when exact.
struct ScalarDeserializer(Scalar);

fn inexact(scalar: &Scalar, target: &str) -> NotScalar {
    // A sequence or text is named, not printed: it may be large.
    match scalar {
        Scalar::Seq(_) | Scalar::SmallUints(_) => NotScalar(format!("a sequence is not an {target}")),
        Scalar::Str(_) => NotScalar(format!("text is not an {target}")),
        Scalar::Bytes(_) => NotScalar(format!("bytes are not an {target}")),
        Scalar::Some(_) => NotScalar(format!("an option is not an {target}")),
        scalar => NotScalar(format!("{scalar:?} is not exactly an {target}")),
    }
}

// An integer as a float when the float is exactly it: `as` rounds to the
// nearest float, so the round trip back (within range: `as` saturates)
// tells. `2^53 + 2` is an exact f64; `2^53 + 1` is not.

fn signed_as_f64(v: i128) -> Option<f64> {
    let f = v as f64;
    let in_range = (-(2f64.powi(127))..2f64.powi(127)).contains(&f);
    (in_range && f as i128 == v).then_some(f)
}

fn unsigned_as_f64(v: u128) -> Option<f64> {
    let f = v as f64;
    (f < 2f64.powi(128) && f as u128 == v).then_some(f)
}

fn signed_as_f32(v: i128) -> Option<f32> {
    let f = v as f32;
    let in_range = (-(2f32.powi(127))..2f32.powi(127)).contains(&f);
    (in_range && f as i128 == v).then_some(f)
}

fn unsigned_as_f32(v: u128) -> Option<f32> {
    let f = v as f32;
    // 2^128 is past f32's range: a value that rounds to it is infinite.
    (f.is_finite() && f as u128 == v).then_some(f)
}

/// Visits the elements of `seq` (a sequence, packed or not, or bytes),
/// refusing a target that leaves some out.
fn visit_elements<'de, V: Visitor<'de>>(visitor: V, seq: Scalar) -> Result<V::Value, NotScalar> {
    refuse_repeats_in_a_set::<V>(&seq)?;
    match seq {
        Scalar::Seq(v) => visit_all(visitor, v.into_iter()),
        Scalar::SmallUints(v) | Scalar::Bytes(v) => {
            visit_all(visitor, v.into_iter().map(|b| Scalar::U64(b.into())))
        }
        // Not reached: callers pass sequences.
        _ => Err(NotScalar("not a sequence".into())),
    }
}

fn visit_all<'de, V, I>(visitor: V, elements: I) -> Result<V::Value, NotScalar>
where
    V: Visitor<'de>,
    I: ExactSizeIterator<Item = Scalar>,
{
    let len = elements.len();
    let mut elements = Elements(elements);
    let value = visitor.visit_seq(&mut elements)?;
    // A tuple shorter than the sequence must not drop the rest.
    match elements.0.len() {
        0 => Ok(value),
        _ => Err(de::Error::invalid_length(
            len,
            &"as many elements as the target holds",
        )),
    }
}

impl<'de> de::Deserializer<'de> for ScalarDeserializer {
    type Error = NotScalar;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, NotScalar> {
        match self.0 {
            Scalar::Newtype(_, v) => ScalarDeserializer(*v).deserialize_any(visitor),
            Scalar::Bool(v) => visitor.visit_bool(v),
            Scalar::I64(v) => visitor.visit_i64(v),
            Scalar::U64(v) => visitor.visit_u64(v),
            Scalar::I128(v) => visitor.visit_i128(v),
            Scalar::U128(v) => visitor.visit_u128(v),
            Scalar::F32(v) => visitor.visit_f32(v),
            Scalar::F64(v) => visitor.visit_f64(v),
            Scalar::Char(v) => visitor.visit_char(v),
            Scalar::Str(v) => visitor.visit_string(v),
            Scalar::Bytes(v) => visitor.visit_byte_buf(v),
            Scalar::None => visitor.visit_none(),
            Scalar::Some(v) => visitor.visit_some(ScalarDeserializer(*v)),
            seq @ (Scalar::Seq(_) | Scalar::SmallUints(_)) => visit_elements(visitor, seq),
        }
    }

    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, NotScalar> {
        let scalar = self.0.content();
        let exact = match scalar {
            Scalar::F32(v) => Some(v),
            Scalar::F64(v) => ((v as f32) as f64 == v || v.is_nan()).then_some(v as f32),
            Scalar::I64(v) => signed_as_f32(v.into()),
            Scalar::U64(v) => signed_as_f32(v.into()),
            Scalar::I128(v) => signed_as_f32(v),
            Scalar::U128(v) => unsigned_as_f32(v),
            _ => None,
        };
        match exact {
            Some(v) => visitor.visit_f32(v),
            None => Err(inexact(&scalar, "f32")),
        }
    }

    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, NotScalar> {
        let scalar = self.0.content();
        let exact = match scalar {
            Scalar::F32(v) => Some(f64::from(v)),
            Scalar::F64(v) => Some(v),
            Scalar::I64(v) => signed_as_f64(v.into()),
            Scalar::U64(v) => signed_as_f64(v.into()),
            Scalar::I128(v) => signed_as_f64(v),
            Scalar::U128(v) => unsigned_as_f64(v),
            _ => None,
        };
        match exact {
            Some(v) => visitor.visit_f64(v),
            None => Err(inexact(&scalar, "f64")),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, NotScalar> {
        match self.0 {
            Scalar::Newtype(own, v) if own == name => visitor.visit_newtype_struct(ScalarDeserializer(*v)),
            Scalar::Newtype(own, _) => Err(NotScalar(format!("a {own} is not a {name}"))),
            other => visitor.visit_newtype_struct(ScalarDeserializer(other)),
        }
    }

    /// Bytes read as a sequence of `u8` too: a `Vec<u8>` asks for a
    /// sequence (serde gives it no byte-buffer visit).
    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, NotScalar> {
        match self.0.content() {
            bytes @ Scalar::Bytes(_) => visit_elements(visitor, bytes),
            other => ScalarDeserializer(other).deserialize_any(visitor),
        }
    }

    /// Text only from text: bytes, even valid UTF-8, are not text.
    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, NotScalar> {
        match self.0.content() {
            Scalar::Bytes(_) => Err(NotScalar("bytes are not text".into())),
            other => ScalarDeserializer(other).deserialize_any(visitor),
        }
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, NotScalar> {
        self.deserialize_str(visitor)
    }

    /// Bytes only from bytes (or a sequence of them): text is not bytes.
    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, NotScalar> {
        match self.0.content() {
            Scalar::Str(_) => Err(NotScalar("text is not bytes".into())),
            other => ScalarDeserializer(other).deserialize_any(visitor),
        }
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, NotScalar> {
        self.deserialize_bytes(visitor)
    }

    // Structs, enums and maps are never read from scalars, even of the
    // same shape: a `(1, 2)` is not a `Point`, a `(5, 7)` not a `Duration`.
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        _: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, NotScalar> {
        Err(not_from_scalars(name))
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        _: usize,
        _: V,
    ) -> Result<V::Value, NotScalar> {
        Err(not_from_scalars(name))
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        _: V,
    ) -> Result<V::Value, NotScalar> {
        Err(not_from_scalars(name))
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        _: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, NotScalar> {
        Err(not_from_scalars(name))
    }

    fn deserialize_map<V: Visitor<'de>>(self, _: V) -> Result<V::Value, NotScalar> {
        Err(not_scalar("a map"))
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, _: V) -> Result<V::Value, NotScalar> {
        Err(not_scalar("an identifier"))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 char
        option unit tuple ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn convert<S: Serialize, T: DeserializeOwned>(v: S) -> Option<T> {
        read_scalar(scalar_of(&v).ok()?).ok()
    }

    #[test]
    fn lossless_conversions_happen() {
        assert_eq!(convert::<_, i64>(-5i32), Some(-5));
        assert_eq!(convert::<_, u32>(7u64), Some(7));
        assert_eq!(convert::<_, f64>(1.5f32), Some(1.5));
        assert_eq!(convert::<_, f64>(1i64 << 53), Some(9_007_199_254_740_992.0));
        assert_eq!(convert::<_, f32>(0.5f64), Some(0.5));
        assert_eq!(convert::<_, String>("text"), Some("text".to_owned()));
        assert_eq!(convert::<_, String>(Box::<str>::from("a")), Some("a".to_owned()));
        assert_eq!(convert::<_, Box<str>>(String::from("b")), Some("b".into()));
        assert_eq!(
            convert::<_, i128>(u128::from(u64::MAX)),
            Some(i128::from(u64::MAX))
        );
        assert!(convert::<_, f64>(f64::NAN).is_some_and(f64::is_nan));
        // 128-bit values narrow as the others do when they fit.
        assert_eq!(convert::<_, u64>(5u128), Some(5));
        assert_eq!(convert::<_, u8>(5u128), Some(5));
        assert_eq!(convert::<_, i64>(-5i128), Some(-5));
        assert_eq!(convert::<_, u64>(i128::from(u64::MAX)), Some(u64::MAX));
        assert_eq!(convert::<_, f64>(5u128), Some(5.0));
        assert_eq!(convert::<_, u128>(5u128), Some(5));
        assert_eq!(convert::<_, i128>(-5i128), Some(-5));
        assert_eq!(convert::<_, Vec<u64>>(vec![5u128]), Some(vec![5]));
        assert_eq!(convert::<_, Vec<u16>>(vec![1u8, 2, 3]), Some(vec![1, 2, 3]));
        assert_eq!(convert::<_, (i64, f64)>((1i32, 2.5f32)), Some((1, 2.5)));
        assert_eq!(convert::<_, Option<i64>>(Some(1i32)), Some(Some(1)));
        assert_eq!(convert::<_, Option<i64>>(None::<i32>), Some(None));
        assert_eq!(
            convert::<_, Vec<String>>(vec!["a", "b"]),
            Some(vec!["a".into(), "b".into()])
        );
    }

    /// Integers read as floats when the float is exactly them, not only
    /// up to the float's exact-integer range (`2^53 + 2` is an `f64`).
    #[test]
    fn integers_read_as_floats_exactly_when_they_are_one() {
        assert_eq!(convert::<_, f64>((1u64 << 53) + 2), Some(9_007_199_254_740_994.0));
        assert_eq!(convert::<_, f64>((1u64 << 53) + 1), None);
        assert_eq!(convert::<_, f64>(u64::MAX), None, "rounds to 2^64");
        assert_eq!(convert::<_, f64>(1u64 << 63), Some(9_223_372_036_854_775_808.0));
        assert_eq!(convert::<_, f64>(i64::MIN), Some(-9_223_372_036_854_775_808.0));
        assert_eq!(convert::<_, f64>(i64::MAX), None, "rounds to 2^63");
        assert_eq!(convert::<_, f64>(1u128 << 127), Some(2f64.powi(127)));
        assert_eq!(convert::<_, f64>(u128::MAX), None, "rounds to 2^128");
        assert_eq!(convert::<_, f64>(i128::MIN), Some(-(2f64.powi(127))));
        assert_eq!(convert::<_, f64>(i128::MAX), None);
        assert_eq!(convert::<_, f32>(1u128 << 127), Some(2f32.powi(127)));
        assert_eq!(convert::<_, f32>(u128::MAX), None, "past f32's range");
        assert_eq!(convert::<_, f32>((1u32 << 24) + 2), Some(16_777_218.0));
        assert_eq!(convert::<_, f32>((1u32 << 24) + 1), None);
        assert_eq!(convert::<_, f32>(-(1i64 << 40)), Some(-(2f32.powi(40))));
        assert_eq!(convert::<_, f32>(i128::MIN), Some(-(2f32.powi(127))));
        assert_eq!(convert::<_, f32>(i128::MAX), None);
    }

    #[test]
    fn lossy_or_unrelated_conversions_do_not() {
        assert_eq!(convert::<_, u8>(300i32), None);
        assert_eq!(convert::<_, u32>(-1i64), None);
        assert_eq!(convert::<_, f32>(0.1f64), None);
        assert_eq!(convert::<_, f64>(u128::MAX), None);
        assert_eq!(convert::<_, u64>(u128::from(u64::MAX) + 1), None);
        assert_eq!(convert::<_, i64>(i128::MIN), None);
        assert_eq!(convert::<_, f64>((1i64 << 53) + 1), None);
        assert_eq!(convert::<_, i64>(1.0f64), None);
        assert_eq!(convert::<_, bool>(1u8), None);
        assert_eq!(
            convert::<_, Vec<u8>>(vec![1u16, 300]),
            None,
            "one element does not fit"
        );
        assert_eq!(
            convert::<_, (i64,)>((1i32, 2i32)),
            None,
            "a shorter tuple would drop one"
        );
        assert_eq!(
            convert::<_, i64>(Some(1i32)),
            None,
            "an option is not its content"
        );
        assert_eq!(
            convert::<_, Vec<u8>>(std::collections::BTreeMap::from([(1u8, 2u8)])),
            None,
            "maps are not converted"
        );
        #[derive(serde::Serialize)]
        struct A {
            x: i32,
        }
        #[derive(serde::Deserialize, Debug, PartialEq)]
        struct B {
            x: i32,
        }
        assert_eq!(
            convert::<_, B>(A { x: 1 }),
            None,
            "a struct of the same shape is another type"
        );
    }

    /// A newtype reads as its content (and its content, or the same
    /// newtype behind a reference, as it), never as another newtype: a
    /// `Meters` read as `Feet` used to convert silently.
    #[test]
    fn newtypes_are_their_content_but_not_each_other() {
        #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
        struct Meters(f64);
        #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
        struct Feet(f64);
        #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
        struct Id(u32);
        assert_eq!(convert::<_, f64>(Meters(5.0)), Some(5.0));
        assert_eq!(convert::<_, Meters>(5.0f32), Some(Meters(5.0)));
        assert_eq!(convert::<_, Meters>(Box::new(Meters(2.5))), Some(Meters(2.5)));
        assert_eq!(convert::<_, Vec<u64>>(vec![Id(1), Id(2)]), Some(vec![1, 2]));
        assert_eq!(
            convert::<_, Feet>(Meters(5.0)),
            None,
            "another newtype of the same shape"
        );
        assert_eq!(convert::<_, Vec<Feet>>(vec![Meters(1.0)]), None);
        assert_eq!(convert::<_, Option<Feet>>(Some(Meters(1.0))), None);
    }

    /// Structs, tuple structs and enums are never read from a tuple or a
    /// sequence of their fields' types: `(1, 2)` read as a `Point`, and
    /// `(5, 7)` as a `Duration`, converted silently.
    #[test]
    fn structs_and_enums_are_not_read_from_tuples() {
        #[derive(serde::Deserialize, Debug, PartialEq)]
        struct Point {
            x: i32,
            y: i32,
        }
        #[derive(serde::Deserialize, Debug, PartialEq)]
        struct Pair(i32, i32);
        #[derive(serde::Deserialize, Debug, PartialEq)]
        struct Unit;
        #[derive(serde::Deserialize, Debug, PartialEq)]
        enum Kind {
            A,
        }
        assert_eq!(convert::<_, Point>((1i32, 2i32)), None);
        assert_eq!(convert::<_, Point>(vec![3i32, 4]), None);
        assert_eq!(convert::<_, Pair>((1i32, 2i32)), None);
        assert_eq!(convert::<_, std::time::Duration>((5u64, 7u32)), None);
        assert_eq!(convert::<_, Kind>("A"), None);
        assert_eq!(convert::<_, Kind>(0u32), None);
        assert_eq!(convert::<_, Unit>(None::<u8>), None);
        assert_eq!(
            convert::<_, std::collections::BTreeMap<u8, u8>>(vec![(1u8, 2u8)]),
            None
        );
        // Their fields' types still convert.
        assert_eq!(convert::<_, (i64, i64)>((1i32, 2i32)), Some((1, 2)));
    }

    /// A set would keep one of each repeated element and drop the rest.
    #[test]
    fn a_sequence_with_repeats_is_not_a_set() {
        use std::collections::{BTreeSet, HashSet};
        assert_eq!(convert::<_, HashSet<u32>>(vec![1u32, 1, 2]), None);
        assert_eq!(convert::<_, BTreeSet<u64>>(vec![1u8, 2, 1]), None);
        assert_eq!(convert::<_, BTreeSet<u64>>(vec![300u32, 2, 300]), None);
        assert_eq!(convert::<_, HashSet<String>>(vec!["a", "b", "a"]), None);
        assert_eq!(convert::<_, Vec<BTreeSet<u8>>>(vec![vec![1u8], vec![2, 2]]), None);
        assert_eq!(
            convert::<_, BTreeSet<(u8, bool)>>(vec![(1u8, true), (1, true)]),
            None
        );
        assert_eq!(
            convert::<_, BTreeSet<u64>>(vec![1u32, 2, 3]),
            Some(BTreeSet::from([1, 2, 3]))
        );
        assert_eq!(
            convert::<_, Vec<BTreeSet<u8>>>(vec![vec![1u8, 2], vec![1, 2]]),
            Some(vec![BTreeSet::from([1, 2]), BTreeSet::from([1, 2])]),
            "equal sets in a list are not repeats in a set"
        );
        assert_eq!(
            convert::<_, BTreeSet<(u8, u16)>>(vec![(1u8, 2u16), (1, 300)]),
            Some(BTreeSet::from([(1, 2), (1, 300)]))
        );
        assert_eq!(convert::<_, Vec<u8>>(vec![7u8, 7]), Some(vec![7, 7]));
        // A set inside something else is found where it is.
        #[derive(serde::Deserialize, Debug, PartialEq)]
        struct Tags(BTreeSet<u8>);
        assert_eq!(convert::<_, Tags>(vec![1u8, 1]), None);
        assert_eq!(convert::<_, Option<HashSet<u8>>>(Some(vec![1u8, 1])), None);
        assert_eq!(convert::<_, (BTreeSet<u8>, u8)>((vec![1u8, 1], 2u8)), None);
        assert_eq!(
            convert::<_, (BTreeSet<u8>, Vec<u8>)>((vec![1u8, 2], vec![3u8, 3])),
            Some((BTreeSet::from([1, 2]), vec![3, 3]))
        );
        assert_eq!(
            convert::<_, Tags>(vec![2u8, 1]),
            Some(Tags(BTreeSet::from([1, 2])))
        );
    }

    /// The order that finds repeats treats equal values as equal and is
    /// total (a sort may panic on one that is not).
    #[test]
    fn the_order_on_scalars_is_total_and_equal_means_equal() {
        use std::cmp::Ordering::*;
        let samples = [
            Scalar::Bool(true),
            Scalar::I64(-1),
            Scalar::U64(1),
            Scalar::F64(f64::NAN),
            Scalar::F64(-0.0),
            Scalar::F64(0.0),
            Scalar::F32(1.0),
            Scalar::Str("a".into()),
            Scalar::None,
            Scalar::Some(Box::new(Scalar::U64(1))),
            Scalar::Seq(vec![Scalar::U64(1), Scalar::I64(2)]),
            Scalar::SmallUints(vec![1, 2]),
            Scalar::Seq(vec![Scalar::U64(1), Scalar::U64(2)]),
            Scalar::Newtype("A", Box::new(Scalar::U64(1))),
        ];
        for a in &samples {
            assert_eq!(order(a, a), Equal, "{a:?}");
            for b in &samples {
                assert_eq!(order(a, b), order(b, a).reverse(), "{a:?} {b:?}");
                for c in &samples {
                    if order(a, b).is_le() && order(b, c).is_le() {
                        assert!(order(a, c).is_le(), "{a:?} {b:?} {c:?}");
                    }
                }
            }
        }
        assert_eq!(order(&Scalar::F64(-0.0), &Scalar::F64(0.0)), Equal);
        assert_eq!(order(&Scalar::F64(f64::NAN), &Scalar::F64(-f64::NAN)), Equal);
        assert_eq!(order(&samples[11], &samples[12]), Equal, "packed or not");
    }

    /// Sequences of small unsigned integers are held packed and read
    /// exactly as the sequence of integers they are.
    #[test]
    fn packed_small_integers_read_as_the_integers_they_are() {
        #[derive(serde::Deserialize, Debug, PartialEq)]
        struct Id(u32);
        let packed = scalar_of(&vec![1u8, 2, 255]).unwrap();
        assert_eq!(packed, Scalar::SmallUints(vec![1, 2, 255]));
        assert_eq!(convert::<_, Vec<u16>>(vec![1u8, 2, 255]), Some(vec![1, 2, 255]));
        assert_eq!(convert::<_, Vec<f32>>(vec![1u32, 2]), Some(vec![1.0, 2.0]));
        assert_eq!(convert::<_, Vec<Id>>(vec![1u8, 2]), Some(vec![Id(1), Id(2)]));
        assert_eq!(convert::<_, (u8, u64)>((1u16, 2u8)), Some((1, 2)));
        assert_eq!(convert::<_, (u8, u8)>(vec![1u8, 2, 3]), None, "one left over");
        assert_eq!(convert::<_, Vec<bool>>(vec![1u8]), None);
        assert_eq!(convert::<_, Vec<i8>>(vec![127u8, 128]), None, "128 is no i8");
        assert_eq!(convert::<_, Vec<u16>>(Vec::<u8>::new()), Some(vec![]));
        // A sequence that stops being small mid-way keeps what came first.
        assert_eq!(
            convert::<_, Vec<u64>>(vec![1u64, 2, 1 << 40, 3]),
            Some(vec![1, 2, 1 << 40, 3])
        );
        assert_eq!(convert::<_, Vec<i64>>(vec![1i64, -1]), Some(vec![1, -1]));
    }

    /// A value nested deeper than the limit is refused as it is reduced,
    /// before its depth could exhaust the stack (it overflowed at about
    /// 10,000 levels).
    #[test]
    fn a_value_nested_too_deep_is_refused_not_a_stack_overflow() {
        #[derive(serde::Serialize, serde::Deserialize)]
        struct Nest(Option<Box<Nest>>);
        impl Drop for Nest {
            // Iterative: the derived drop of a deep chain recurses too.
            fn drop(&mut self) {
                let mut next = self.0.take();
                while let Some(mut n) = next {
                    next = n.0.take();
                }
            }
        }
        fn nest(levels: usize) -> Nest {
            (0..levels).fold(Nest(None), |inner, _| Nest(Some(Box::new(inner))))
        }
        fn levels(mut n: &Nest) -> usize {
            let mut count = 0;
            while let Some(inner) = &n.0 {
                (count, n) = (count + 1, inner);
            }
            count
        }
        // Two levels each (the newtype and its option): 63 fit in 128.
        let shallow = scalar_of(&nest(63)).unwrap();
        assert_eq!(read_scalar::<Nest>(shallow).map(|n| levels(&n)).ok(), Some(63));
        let err = scalar_of(&nest(1_000_000)).unwrap_err();
        assert!(err.to_string().contains("nested more than 128"), "{err}");
        assert!(scalar_of(&nest(64)).is_err());
    }

    /// Bytes are not text, even when they are valid UTF-8, and text is not
    /// bytes.
    #[test]
    fn bytes_and_text_are_not_each_other() {
        struct Raw(&'static [u8]);
        impl Serialize for Raw {
            fn serialize<S: ser::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_bytes(self.0)
            }
        }
        #[derive(Debug, PartialEq)]
        struct Buf(Vec<u8>);
        impl<'de> de::Deserialize<'de> for Buf {
            fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Buf, D::Error> {
                struct V;
                impl Visitor<'_> for V {
                    type Value = Buf;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str("bytes")
                    }
                    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Buf, E> {
                        Ok(Buf(v.to_vec()))
                    }
                    fn visit_str<E: de::Error>(self, v: &str) -> Result<Buf, E> {
                        Ok(Buf(v.as_bytes().to_vec()))
                    }
                }
                d.deserialize_byte_buf(V)
            }
        }
        assert_eq!(convert::<_, String>(Raw(b"abc")), None);
        assert_eq!(convert::<_, Box<str>>(Raw(b"abc")), None);
        assert_eq!(convert::<_, Buf>("abc"), None);
        assert_eq!(convert::<_, Buf>(Raw(b"abc")), Some(Buf(b"abc".to_vec())));
        assert_eq!(convert::<_, Vec<u16>>(Raw(b"ab")), Some(vec![97, 98]));
        assert_eq!(convert::<_, (u8,)>(Raw(b"ab")), None, "one left over");
    }
}
