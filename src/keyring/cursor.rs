//! Listing cursors: where a page stopped, signed with a key derived from
//! the deployment secret and bound to the listing's filter and order. A
//! client cannot forge one, nor carry one over to another filter (which
//! would start that listing at a place it never reached); every instance of
//! the deployment reads what another issued.
//!
//! `<base64url(version, first, second, id)>.<base64url(HMAC-SHA256)>`; the
//! contents are not a contract, only that a cursor goes back unchanged.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

use super::listing::Listing;
use crate::keys::format::ID_LEN;
use crate::keys::KeyId;
use crate::login::signed::Signer;
use crate::store::{Position, Sort};

const VERSION: u8 = 1;
const LEN: usize = 1 + 8 + 8 + ID_LEN;

pub struct Cursors(Signer);

// === impl Cursors ===

impl Cursors {
    pub fn new(key: [u8; 32]) -> Cursors {
        Cursors(Signer::new(key))
    }

    /// The cursor of `listing` that resumes after `at`.
    pub fn issue(&self, listing: &Listing, at: &Position) -> String {
        let mut payload = Vec::with_capacity(LEN);
        payload.push(VERSION);
        payload.extend_from_slice(&at.first.to_be_bytes());
        payload.extend_from_slice(&at.second.to_be_bytes());
        payload.extend_from_slice(at.id.as_str().as_bytes());
        let tag = self
            .0
            .sign(&[b"keygate list cursor", &payload, &bind(listing)]);
        format!("{}.{tag}", URL_SAFE_NO_PAD.encode(payload))
    }

    /// Where a cursor of `listing` resumes; `None` for anything this
    /// deployment did not issue for exactly this listing.
    pub fn read(&self, listing: &Listing, cursor: &str) -> Option<Position> {
        let (payload, tag) = cursor.split_once('.')?;
        let payload = URL_SAFE_NO_PAD.decode(payload).ok()?;
        if payload.len() != LEN || payload[0] != VERSION {
            return None;
        }
        if !self
            .0
            .verify(&[b"keygate list cursor", &payload, &bind(listing)], tag)
        {
            return None;
        }
        let word = |at: usize| u64::from_be_bytes(payload[at..at + 8].try_into().expect("8 bytes"));
        Some(Position {
            first: word(1),
            second: word(9),
            id: KeyId::parse(std::str::from_utf8(&payload[17..]).ok()?)?,
        })
    }
}

/// The listing a cursor belongs to, unambiguously (JSON).
fn bind(listing: &Listing) -> Vec<u8> {
    let f = &listing.filter;
    let sort = match listing.order.sort {
        Sort::Created => "created",
        Sort::Expires => "expires",
    };
    serde_json::to_vec(&(
        sort,
        listing.order.descending,
        &f.user,
        &f.label,
        f.expires_before,
    ))
    .expect("plain values serialize")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{KeyFilter, Order};

    fn listing(user: Option<&str>) -> Listing {
        Listing {
            filter: KeyFilter {
                user: user.map(str::to_owned),
                ..KeyFilter::default()
            },
            order: Order::default(),
        }
    }

    #[test]
    fn a_cursor_reads_back_only_for_its_listing_and_deployment() {
        let cursors = Cursors::new([7; 32]);
        let at = Position {
            first: 1_700_000_000,
            second: u64::MAX,
            id: KeyId::parse("AbCdEfGhIjKl").unwrap(),
        };
        let alice = listing(Some("alice"));
        let c = cursors.issue(&alice, &at);
        assert!(c
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)));
        assert_eq!(cursors.read(&alice, &c), Some(at));
        assert_eq!(cursors.read(&listing(Some("bob")), &c), None);
        assert_eq!(cursors.read(&listing(None), &c), None);
        let mut newest_last = alice.clone();
        newest_last.order.descending = false;
        assert_eq!(cursors.read(&newest_last, &c), None);
        assert_eq!(Cursors::new([8; 32]).read(&alice, &c), None);
        // A changed position, or an id where a cursor was expected.
        let mut forged = c.clone().into_bytes();
        forged[3] ^= 1;
        assert_eq!(
            cursors.read(&alice, &String::from_utf8(forged).unwrap()),
            None
        );
        assert_eq!(cursors.read(&alice, "AbCdEfGhIjKl"), None);
        assert_eq!(cursors.read(&alice, ""), None);
    }
}
