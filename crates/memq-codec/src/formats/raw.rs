//! The raw format: the payload is the value's bytes, with no serialization.
//!
//! Encoding accepts what serializes as bytes or text: `Vec<u8>`, `&[u8]`, `[u8; N]`,
//! `Bytes`, `serde_bytes` types, `String`, `&str`, and newtype wrappers around them. Decoding
//! produces any type that deserializes from bytes, a string or a sequence of bytes:
//! `Vec<u8>`, `Bytes`, `String` (if the bytes are UTF-8), `[u8; N]` (if the length matches).
//! `Vec<u8>` is rebuilt one byte at a time by serde; `Bytes` or `serde_bytes::ByteBuf` take
//! the whole slice at once.

use std::borrow::Cow;
use std::fmt;

use serde::de::value::SeqDeserializer;
use serde::de::{DeserializeOwned, Visitor};
use serde::ser::{Impossible, SerializeSeq, SerializeTuple};
use serde::{forward_to_deserialize_any, Serialize};

use crate::error::{CodecError, ErrorKind};

pub(crate) fn encode<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) -> Result<(), CodecError> {
    value
        .serialize(RawSerializer { out })
        .map_err(|e| CodecError::msg(ErrorKind::Serialize, format!("raw format: {}", e.0)))
}

pub(crate) fn decode<T: DeserializeOwned>(bytes: Cow<'_, [u8]>) -> Result<T, CodecError> {
    T::deserialize(RawDeserializer { bytes })
        .map_err(|e| CodecError::msg(ErrorKind::Deserialize, format!("raw format: {}", e.0)))
}

/// The error both directions report to serde.
#[derive(Debug)]
struct RawError(String);

impl fmt::Display for RawError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RawError {}

impl serde::ser::Error for RawError {
    fn custom<M: fmt::Display>(msg: M) -> Self {
        RawError(msg.to_string())
    }
}

impl serde::de::Error for RawError {
    fn custom<M: fmt::Display>(msg: M) -> Self {
        RawError(msg.to_string())
    }
}

fn not_text(e: std::str::Utf8Error) -> RawError {
    RawError(format!("payload is not UTF-8 text: {e}"))
}

fn not_bytes(what: &str) -> RawError {
    RawError(format!("holds bytes or text, not {what}"))
}

/// Appends a byte string, a string or a sequence of `u8` to `out`.
struct RawSerializer<'a> {
    out: &'a mut Vec<u8>,
}

/// Generates the `serialize_*` methods that refuse a value kind.
macro_rules! refuse {
    ($($method:ident($($arg:ty),*) -> $ok:ty = $what:literal;)*) => {
        $(fn $method(self, $(_: $arg),*) -> Result<$ok, RawError> { Err(not_bytes($what)) })*
    };
}

impl<'a> serde::Serializer for RawSerializer<'a> {
    type Ok = ();
    type Error = RawError;
    type SerializeSeq = ByteSeq<'a>;
    type SerializeTuple = ByteSeq<'a>;
    type SerializeTupleStruct = Impossible<(), RawError>;
    type SerializeTupleVariant = Impossible<(), RawError>;
    type SerializeMap = Impossible<(), RawError>;
    type SerializeStruct = Impossible<(), RawError>;
    type SerializeStructVariant = Impossible<(), RawError>;

    fn serialize_bytes(self, v: &[u8]) -> Result<(), RawError> {
        self.out.extend_from_slice(v);
        Ok(())
    }

    fn serialize_str(self, v: &str) -> Result<(), RawError> {
        self.out.extend_from_slice(v.as_bytes());
        Ok(())
    }

    fn serialize_seq(self, len: Option<usize>) -> Result<ByteSeq<'a>, RawError> {
        // A size hint is only a hint: never let a bogus one abort the process.
        let _ = self.out.try_reserve(len.unwrap_or(0));
        Ok(ByteSeq { out: self.out })
    }

    fn serialize_tuple(self, len: usize) -> Result<ByteSeq<'a>, RawError> {
        self.serialize_seq(Some(len))
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<(), RawError> {
        value.serialize(self)
    }

    refuse! {
        serialize_bool(bool) -> () = "a bool";
        serialize_i8(i8) -> () = "an integer";
        serialize_i16(i16) -> () = "an integer";
        serialize_i32(i32) -> () = "an integer";
        serialize_i64(i64) -> () = "an integer";
        serialize_u8(u8) -> () = "an integer";
        serialize_u16(u16) -> () = "an integer";
        serialize_u32(u32) -> () = "an integer";
        serialize_u64(u64) -> () = "an integer";
        serialize_f32(f32) -> () = "a float";
        serialize_f64(f64) -> () = "a float";
        serialize_char(char) -> () = "a char";
        serialize_none() -> () = "an option";
        serialize_unit() -> () = "a unit";
        serialize_unit_struct(&'static str) -> () = "a unit struct";
        serialize_unit_variant(&'static str, u32, &'static str) -> () = "an enum";
        serialize_tuple_struct(&'static str, usize) -> Impossible<(), RawError> = "a tuple struct";
        serialize_tuple_variant(&'static str, u32, &'static str, usize) -> Impossible<(), RawError> = "an enum";
        serialize_map(Option<usize>) -> Impossible<(), RawError> = "a map";
        serialize_struct(&'static str, usize) -> Impossible<(), RawError> = "a struct";
        serialize_struct_variant(&'static str, u32, &'static str, usize) -> Impossible<(), RawError> = "an enum";
    }

    fn serialize_some<T: Serialize + ?Sized>(self, _: &T) -> Result<(), RawError> {
        Err(not_bytes("an option"))
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<(), RawError> {
        Err(not_bytes("an enum"))
    }
}

/// The elements of a sequence, each of which must be a `u8`.
struct ByteSeq<'a> {
    out: &'a mut Vec<u8>,
}

impl SerializeSeq for ByteSeq<'_> {
    type Ok = ();
    type Error = RawError;

    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), RawError> {
        let byte = value.serialize(ByteSerializer)?;
        self.out.push(byte);
        Ok(())
    }

    fn end(self) -> Result<(), RawError> {
        Ok(())
    }
}

impl SerializeTuple for ByteSeq<'_> {
    type Ok = ();
    type Error = RawError;

    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), RawError> {
        SerializeSeq::serialize_element(self, value)
    }

    fn end(self) -> Result<(), RawError> {
        Ok(())
    }
}

/// Accepts exactly one `u8`.
struct ByteSerializer;

impl serde::Serializer for ByteSerializer {
    type Ok = u8;
    type Error = RawError;
    type SerializeSeq = Impossible<u8, RawError>;
    type SerializeTuple = Impossible<u8, RawError>;
    type SerializeTupleStruct = Impossible<u8, RawError>;
    type SerializeTupleVariant = Impossible<u8, RawError>;
    type SerializeMap = Impossible<u8, RawError>;
    type SerializeStruct = Impossible<u8, RawError>;
    type SerializeStructVariant = Impossible<u8, RawError>;

    fn serialize_u8(self, v: u8) -> Result<u8, RawError> {
        Ok(v)
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<u8, RawError> {
        value.serialize(self)
    }

    refuse! {
        serialize_bool(bool) -> u8 = "a sequence of bools";
        serialize_i8(i8) -> u8 = "a sequence of i8";
        serialize_i16(i16) -> u8 = "a sequence of i16";
        serialize_i32(i32) -> u8 = "a sequence of i32";
        serialize_i64(i64) -> u8 = "a sequence of i64";
        serialize_u16(u16) -> u8 = "a sequence of u16";
        serialize_u32(u32) -> u8 = "a sequence of u32";
        serialize_u64(u64) -> u8 = "a sequence of u64";
        serialize_f32(f32) -> u8 = "a sequence of floats";
        serialize_f64(f64) -> u8 = "a sequence of floats";
        serialize_char(char) -> u8 = "a sequence of chars";
        serialize_str(&str) -> u8 = "a sequence of strings";
        serialize_bytes(&[u8]) -> u8 = "a sequence of byte strings";
        serialize_none() -> u8 = "a sequence of options";
        serialize_unit() -> u8 = "a sequence of units";
        serialize_unit_struct(&'static str) -> u8 = "a sequence of unit structs";
        serialize_unit_variant(&'static str, u32, &'static str) -> u8 = "a sequence of enums";
        serialize_seq(Option<usize>) -> Impossible<u8, RawError> = "nested sequences";
        serialize_tuple(usize) -> Impossible<u8, RawError> = "nested sequences";
        serialize_tuple_struct(&'static str, usize) -> Impossible<u8, RawError> = "a sequence of tuple structs";
        serialize_tuple_variant(&'static str, u32, &'static str, usize) -> Impossible<u8, RawError> = "a sequence of enums";
        serialize_map(Option<usize>) -> Impossible<u8, RawError> = "a sequence of maps";
        serialize_struct(&'static str, usize) -> Impossible<u8, RawError> = "a sequence of structs";
        serialize_struct_variant(&'static str, u32, &'static str, usize) -> Impossible<u8, RawError> = "a sequence of enums";
    }

    fn serialize_some<T: Serialize + ?Sized>(self, _: &T) -> Result<u8, RawError> {
        Err(not_bytes("a sequence of options"))
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<u8, RawError> {
        Err(not_bytes("a sequence of enums"))
    }
}

/// Hands the whole payload to the visitor as bytes, a string or a sequence of `u8`; an owned
/// payload is handed over without a copy where the visitor takes ownership.
struct RawDeserializer<'a> {
    bytes: Cow<'a, [u8]>,
}

impl<'de> serde::Deserializer<'de> for RawDeserializer<'_> {
    type Error = RawError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, RawError> {
        match self.bytes {
            Cow::Borrowed(bytes) => visitor.visit_bytes(bytes),
            Cow::Owned(bytes) => visitor.visit_byte_buf(bytes),
        }
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, RawError> {
        visitor.visit_byte_buf(self.bytes.into_owned())
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, RawError> {
        match self.bytes {
            Cow::Borrowed(bytes) => match std::str::from_utf8(bytes) {
                Ok(s) => visitor.visit_str(s),
                Err(e) => Err(not_text(e)),
            },
            Cow::Owned(bytes) => match String::from_utf8(bytes) {
                Ok(s) => visitor.visit_string(s),
                Err(e) => Err(not_text(e.utf8_error())),
            },
        }
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, RawError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, RawError> {
        let mut seq = SeqDeserializer::new(self.bytes.iter().copied());
        let value = visitor.visit_seq(&mut seq)?;
        seq.end()?;
        Ok(value)
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, RawError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, RawError> {
        visitor.visit_newtype_struct(self)
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char bytes option unit unit_struct
        tuple_struct map struct enum identifier ignored_any
    }
}
