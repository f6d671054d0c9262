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
//! shape; maps; `u128::MAX` as `f64`; `0.1f64` as `f32`) is a type
//! mismatch naming both types: no silent reinterpretation, no lossy round
//! trip.

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

/// `value` as one scalar, or why it is not one.
pub(crate) fn scalar_of<V: Serialize + ?Sized>(value: &V) -> Result<Scalar, NotScalar> {
    value.serialize(ScalarSerializer)
}

/// Reads `scalar` as a `T`, when `T` holds it exactly.
pub(crate) fn read_scalar<T: DeserializeOwned>(scalar: Scalar) -> Result<T, NotScalar> {
    T::deserialize(ScalarDeserializer(scalar))
}

fn not_scalar(what: &str) -> NotScalar {
    NotScalar(format!("{what} is not a single scalar"))
}

struct ScalarSerializer;

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
        Ok(Scalar::Some(Box::new(v.serialize(self)?)))
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
        Ok(Scalar::Newtype(name, Box::new(v.serialize(self)?)))
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
        Ok(SeqOfScalars(Vec::with_capacity(len.unwrap_or(0).min(4096))))
    }
    fn serialize_tuple(self, len: usize) -> Result<Self::SerializeTuple, NotScalar> {
        Ok(SeqOfScalars(Vec::with_capacity(len.min(4096))))
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

/// The elements of a sequence or tuple, each made of scalars.
pub(crate) struct SeqOfScalars(Vec<Scalar>);

impl ser::SerializeSeq for SeqOfScalars {
    type Ok = Scalar;
    type Error = NotScalar;
    fn serialize_element<V: Serialize + ?Sized>(&mut self, v: &V) -> Result<(), NotScalar> {
        self.0.push(v.serialize(ScalarSerializer)?);
        Ok(())
    }
    fn end(self) -> Result<Scalar, NotScalar> {
        Ok(Scalar::Seq(self.0))
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
struct Elements(std::vec::IntoIter<Scalar>);

impl<'de> de::SeqAccess<'de> for Elements {
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
    NotScalar(format!("{scalar:?} is not exactly an {target}"))
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
            Scalar::Seq(v) => {
                let len = v.len();
                let mut elements = Elements(v.into_iter());
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
        }
    }

    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, NotScalar> {
        let scalar = self.0.content();
        let exact = match scalar {
            Scalar::F32(v) => Some(v),
            Scalar::F64(v) => ((v as f32) as f64 == v || v.is_nan()).then_some(v as f32),
            Scalar::I64(v) => (v.unsigned_abs() <= 1 << 24).then_some(v as f32),
            Scalar::U64(v) => (v <= 1 << 24).then_some(v as f32),
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
            Scalar::I64(v) => (v.unsigned_abs() <= 1 << 53).then_some(v as f64),
            Scalar::U64(v) => (v <= 1 << 53).then_some(v as f64),
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
            Scalar::Bytes(v) => {
                let mut bytes = de::value::SeqDeserializer::new(v.into_iter());
                let value = visitor.visit_seq(&mut bytes)?;
                bytes.end()?;
                Ok(value)
            }
            other => ScalarDeserializer(other).deserialize_any(visitor),
        }
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 char str string
        bytes byte_buf option unit unit_struct tuple
        tuple_struct map struct enum identifier ignored_any
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
}
