//! Open enums for the spec's string enums.
//!
//! progenitor (typify) makes closed enums: a `fileStatus` or `filePurpose` the
//! server adds tomorrow would fail the deserialisation of a whole list. Each
//! string enum of the spec becomes an enum with one variant per documented
//! value plus `Unknown(String)`, which keeps the value it did not recognise.

use anyhow::{Context, Result};
use proc_macro2::{Ident, Span, TokenStream};
use quote::quote;

pub fn generate(enums: &[(String, Vec<String>, Option<String>)]) -> Result<Vec<syn::Item>> {
    let mut items = Vec::new();
    for (name, values, description) in enums {
        let tokens = one(name, values, description.as_deref());
        let file: syn::File = syn::parse2(tokens).with_context(|| format!("open enum {name}"))?;
        items.extend(file.items);
    }
    Ok(items)
}

fn one(name: &str, values: &[String], description: Option<&str>) -> TokenStream {
    let ident = Ident::new(name, Span::call_site());
    let doc = description.unwrap_or(name).trim().to_string();
    let variants: Vec<Ident> = values
        .iter()
        .map(|v| Ident::new(&pascal_case(v), Span::call_site()))
        .collect();
    let docs = values.iter().map(|v| format!("`{v}`"));
    quote! {
        #[doc = #doc]
        ///
        /// Open: a value this client does not know yet is kept in `Unknown`
        /// instead of failing the whole response.
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum #ident {
            #( #[doc = #docs] #variants, )*
            /// A value the spec does not list (yet).
            Unknown(::std::string::String),
        }

        impl #ident {
            /// Every documented value.
            pub const KNOWN: &'static [Self] = &[ #( Self::#variants ),* ];

            /// The value as sent on the wire.
            pub fn as_str(&self) -> &str {
                match self {
                    #( Self::#variants => #values, )*
                    Self::Unknown(other) => other.as_str(),
                }
            }
        }

        impl ::std::fmt::Display for #ident {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::std::str::FromStr for #ident {
            type Err = ::std::convert::Infallible;
            fn from_str(value: &str) -> ::std::result::Result<Self, Self::Err> {
                Ok(match value {
                    #( #values => Self::#variants, )*
                    other => Self::Unknown(other.to_string()),
                })
            }
        }

        impl ::serde::Serialize for #ident {
            fn serialize<S: ::serde::Serializer>(&self, serializer: S) -> ::std::result::Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> ::serde::Deserialize<'de> for #ident {
            fn deserialize<D: ::serde::Deserializer<'de>>(deserializer: D) -> ::std::result::Result<Self, D::Error> {
                let value = <::std::string::String as ::serde::Deserialize>::deserialize(deserializer)?;
                Ok(match value.parse::<Self>() {
                    Ok(parsed) => parsed,
                    Err(never) => match never {},
                })
            }
        }
    }
}

/// `business_verification` -> `BusinessVerification`.
pub fn pascal_case(value: &str) -> String {
    value
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|part| !part.is_empty())
        .map(|part| {
            let mut chars = part.chars();
            match chars.next() {
                Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
                None => String::new(),
            }
        })
        .collect()
}
