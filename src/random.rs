//! Random bytes from the OS's source, for secrets and unique names: key
//! secrets, digest keys, admin tokens, session ids, store epochs, lease
//! holders, webhook ids. There is no fallback source: without one, nothing
//! keygate makes would be secret, so a failure is a panic.

/// `N` random bytes.
pub fn bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).expect("the OS random source works");
    b
}

/// `N` random bytes as `2 * N` lowercase hex digits.
pub fn hex<const N: usize>() -> String {
    bytes::<N>().iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_is_two_lowercase_digits_a_byte_and_differs_each_time() {
        let (a, b) = (hex::<8>(), hex::<8>());
        assert_eq!(a.len(), 16);
        assert!(
            a.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')),
            "{a}"
        );
        assert_ne!(a, b, "64 random bits twice alike");
    }
}
