//! SRTCP known answers and properties for `rtp_middlebox::srtp`.
//!
//! Where each vector comes from:
//!
//! - **RFC 3711 Appendix B.2** (AES-CM keystream) and **B.3** (key
//!   derivation): `rtc-srtp` keeps its KDF and counter-mode plumbing private,
//!   so these run on the primitives it uses (the crypto provider it
//!   re-exports, ring backend), with the RFC's counter blocks and PRF inputs.
//!   B.3's master key and salt are also the key of libsrtp's reference
//!   SRTCP packet below, which checks the crate's full derivation (SRTCP
//!   labels 3, 4, 5) end to end.
//! - **libsrtp `test/srtp_driver.c`**, `srtp_validate()` (default policy,
//!   AES_CM_128_HMAC_SHA1_80) and `srtp_validate_gcm()` (AEAD_AES_128_GCM):
//!   the SRTCP reference packets libsrtp checks itself against.
//! - **libsrtp 2.5.0** (Debian `libsrtp2-1` 2.5.0-3): `srtp_protect_rtcp`
//!   output for one RR + SDES compound under each of the four suites,
//!   generated once for this file (policy noted beside each vector).
//! - **RFC 7714 §17** SRTCP examples for AEAD_AES_128_GCM and
//!   AEAD_AES_256_GCM: given with the *session* key and salt (no master key),
//!   so they run on the AEAD primitive with the RFC's IV (§9.1) and AAD
//!   (§9) construction, and through the keyless trailer helper.
//!
//! Everything else is a property: round trips, one flipped bit, replays,
//! truncations, random bytes. Per-packet costs: `cargo bench --bench srtcp`.

use rtp_middlebox::srtp::SRTCP_REPLAY_WINDOW;
use rtp_middlebox::srtp::{srtcp_trailer, CryptoSuite, SrtcpReader, SrtcpWriter, SrtpError, SrtpKeys};

use proptest::prelude::*;
use rtc_srtp::crypto::{self as rtc_crypto, AeadAlgorithm, BlockCipherAlgorithm, StreamCipherAlgorithm};

/// Hex with any whitespace in between.
fn hex(s: &str) -> Vec<u8> {
    let digits: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    assert!(digits.len() % 2 == 0, "odd hex length");
    digits
        .chunks(2)
        .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap())
        .collect()
}

fn keys_from_hex(suite: CryptoSuite, key: &str, salt: &str) -> SrtpKeys {
    SrtpKeys::new(suite, &hex(key), &hex(salt)).unwrap()
}

/// Deterministic bytes for keys and payloads (splitmix64).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
    fn keys(&mut self, suite: CryptoSuite) -> SrtpKeys {
        SrtpKeys::new(
            suite,
            &self.bytes(suite.master_key_len()),
            &self.bytes(suite.master_salt_len()),
        )
        .unwrap()
    }
}

/// `plain` protected with a fresh writer for `keys` (SRTCP index 1).
fn protect(keys: &SrtpKeys, plain: &[u8]) -> Vec<u8> {
    let mut wire = Vec::new();
    SrtcpWriter::new(keys).unwrap().encrypt(plain, &mut wire).unwrap();
    wire
}

/// Random keys of `suite` and a random [`compound`] from `ssrc` protected
/// with them (SRTCP index 1).
fn keys_and_protected_compound(rng: &mut Rng, suite: CryptoSuite, ssrc: u32, blocks: u8) -> (SrtpKeys, Vec<u8>) {
    let keys = rng.keys(suite);
    let wire = protect(&keys, &compound(ssrc, blocks, rng));
    (keys, wire)
}

/// `n` random compounds from `ssrc`, each with one report block, protected
/// by one writer for `keys` (SRTCP indices 1 to `n`).
fn protected_run(keys: &SrtpKeys, n: usize, ssrc: u32, rng: &mut Rng) -> Vec<Vec<u8>> {
    let mut writer = SrtcpWriter::new(keys).unwrap();
    (0..n)
        .map(|_| {
            let mut wire = Vec::new();
            writer.encrypt(&compound(ssrc, 1, rng), &mut wire).unwrap();
            wire
        })
        .collect()
}

/// A plain RTCP compound from `ssrc`: RR with `blocks` report blocks, then
/// an SDES CNAME chunk, padded to 32-bit words as RFC 3550 §6.5 requires.
fn compound(ssrc: u32, blocks: u8, rng: &mut Rng) -> Vec<u8> {
    let mut p = vec![0x80 | blocks, 201];
    p.extend_from_slice(&(1 + 6 * u16::from(blocks)).to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(&rng.bytes(24 * usize::from(blocks)));
    // SDES: header, chunk(SSRC, CNAME "mbx", END, pad).
    p.extend_from_slice(&[0x81, 202, 0x00, 0x03]);
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(&[1, 3, b'm', b'b', b'x', 0, 0, 0]);
    p
}

// ---------------------------------------------------------------------------
// RFC 3711 Appendix B
// ---------------------------------------------------------------------------

/// RFC 3711 B.2: AES-CM keystream for session key 2B7E...4F3C, SSRC 0,
/// ROC 0, SEQ 0, session salt F0F1...FCFD (so the IV is F0F1...FCFD0000).
/// The RFC lists the first three and the last three blocks of a 65282-block
/// segment; the last three start at counter ...FEFF.
#[test]
fn rfc3711_b2_aes_cm_keystream() {
    let provider = rtc_crypto::default_provider().unwrap();
    let key = hex("2B7E151628AED2A6ABF7158809CF4F3C");
    let mut cipher = provider
        .crypto()
        .new_stream_cipher(StreamCipherAlgorithm::Aes128Ctr, &key)
        .unwrap();

    // Three blocks of keystream from the counter block `iv`.
    let mut keystream = |iv: &str| {
        let mut blocks = [0u8; 48];
        cipher.apply_keystream(&hex(iv), &mut blocks).unwrap();
        blocks
    };
    let head = keystream("F0F1F2F3F4F5F6F7F8F9FAFBFCFD0000");
    assert_eq!(
        head[..],
        hex("E03EAD0935C95E80E166B16DD92B4EB4   D23513162B02D0F72A43A2FE4A5F97AB
             41E95B3BB0A2E8DD477901E4FCA894C0")[..]
    );

    let tail = keystream("F0F1F2F3F4F5F6F7F8F9FAFBFCFDFEFF");
    assert_eq!(
        tail[..],
        hex("EC8CDF7398607CB0F2D21675EA9EA1E4   362B7C3C6773516318A077D7FC5073AE
             6A2CC3787889374FBEB4C81B17BA6C44")[..]
    );

    // The same counter sequence reached from the start of the segment:
    // block 0xFEFF (65279) of the keystream is the first tail block.
    let mut segment = vec![0u8; 65282 * 16];
    cipher
        .apply_keystream(&hex("F0F1F2F3F4F5F6F7F8F9FAFBFCFD0000"), &mut segment)
        .unwrap();
    assert_eq!(segment[..48], head);
    assert_eq!(segment[segment.len() - 48..], tail);
}

/// RFC 3711 B.3: the AES-CM PRF (§4.3.3) for master key E1F9...4139 and
/// master salt 0EC6...ABE6 with kdr = 0. The PRF input is
/// (master salt XOR (label << 48)) * 2^16 + block counter; each output
/// block is AES(master key, input).
#[test]
fn rfc3711_b3_key_derivation() {
    let provider = rtc_crypto::default_provider().unwrap();
    let master_key = hex("E1F97A0D3E018BE0D64FA32C06DE4139");
    let master_salt = hex("0EC675AD498AFEEBB6960B3AABE6");

    let prf = |label: u8, len: usize| -> (Vec<u8>, Vec<[u8; 16]>) {
        let mut out = Vec::new();
        let mut inputs = Vec::new();
        for counter in 0u16.. {
            if out.len() >= len {
                break;
            }
            let mut block = [0u8; 16];
            block[..14].copy_from_slice(&master_salt);
            // label sits 7 bytes from the left of the 14-byte salt, i.e.
            // just left of the 48-bit (index DIV kdr), which is zero here.
            block[7] ^= label;
            block[14..].copy_from_slice(&counter.to_be_bytes());
            inputs.push(block);
            provider
                .crypto()
                .block_encrypt(BlockCipherAlgorithm::Aes128, &master_key, &mut block)
                .unwrap();
            out.extend_from_slice(&block);
        }
        out.truncate(len);
        (out, inputs)
    };

    // Cipher key: label 0x00.
    let (cipher_key, inputs) = prf(0x00, 16);
    assert_eq!(inputs[0][..], hex("0EC675AD498AFEEBB6960B3AABE60000")[..]);
    assert_eq!(cipher_key, hex("C61E7A93744F39EE10734AFE3FF7A087"));

    // Cipher salt: label 0x02; the RFC shows the whole AES output block.
    let (salt_block, inputs) = prf(0x02, 16);
    assert_eq!(inputs[0][..], hex("0EC675AD498AFEE9B6960B3AABE60000")[..]);
    assert_eq!(salt_block, hex("30CBBC08863D8C85D49DB34A9AE17AC6"));
    assert_eq!(salt_block[..14], hex("30CBBC08863D8C85D49DB34A9AE1")[..]);

    // Auth key: label 0x01, 94 octets from six AES blocks (HMAC-SHA1 uses
    // the first 20).
    let (auth_key, inputs) = prf(0x01, 94);
    assert_eq!(inputs[0][..], hex("0EC675AD498AFEEAB6960B3AABE60000")[..]);
    assert_eq!(inputs[5][..], hex("0EC675AD498AFEEAB6960B3AABE60005")[..]);
    assert_eq!(
        auth_key,
        hex("CEBE321F6FF7716B6FD4AB49AF256A15
             6D38BAA48F0A0ACF3C34E2359E6CDBCE
             E049646C43D9327AD175578EF7227098
             6371C10C9A369AC2F94A8C5FBCDDDC25
             6D6E919A48B610EF17C2041E47403576
             6B68642C59BBFC2F34DB60DBDFB2")
    );
}

// ---------------------------------------------------------------------------
// libsrtp reference packets (test/srtp_driver.c)
// ---------------------------------------------------------------------------

/// Checks that our writer reproduces `wire` from `plain` (the first packet
/// a fresh context protects gets SRTCP index 1, as in libsrtp) and that a
/// fresh reader turns `wire` back into `plain`.
fn known_answer(keys: &SrtpKeys, plain: &[u8], wire: &[u8]) {
    let mut writer = SrtcpWriter::new(keys).unwrap();
    let mut out = Vec::new();
    writer.encrypt(plain, &mut out).unwrap();
    assert_eq!(out, wire, "{} encrypt", keys.suite());

    let mut reader = SrtcpReader::new(keys).unwrap();
    reader.decrypt(wire, &mut out).unwrap();
    assert_eq!(out, plain, "{} decrypt", keys.suite());
    assert_eq!(srtcp_trailer(wire, keys.suite().srtcp_tag_len()), Some((true, 1)));
}

/// libsrtp `srtp_validate()`: default policy (AES_CM_128_HMAC_SHA1_80 for
/// SRTP and SRTCP), SSRC 0xcafebabe, `test_key` = RFC 3711 B.3's master key
/// and salt. The plaintext is an SR header whose length field (0x0b) claims
/// more than the 24 bytes given; SRTCP does not look at it.
#[test]
fn libsrtp_srtp_validate_srtcp() {
    let keys = keys_from_hex(
        CryptoSuite::AesCm128HmacSha1_80,
        "e1f97a0d3e018be0d64fa32c06de4139",
        "0ec675ad498afeebb6960b3aabe6",
    );
    let plain = hex("81c8000b cafebabe  abababab abababab
         abababab abababab");
    let wire = hex("81c8000b cafebabe                       # clear header + SSRC
         7128035b e487b9bd  bef89041 f977a5a8    # encrypted payload
         80000001                                # E = 1, index 1
         993e08cd 54d6c123 0798                  # HMAC-SHA1-80 tag"
        .lines()
        .map(|l| l.split('#').next().unwrap())
        .collect::<String>()
        .as_str());
    known_answer(&keys, &plain, &wire);
}

/// libsrtp `srtp_validate_gcm()`: AEAD_AES_128_GCM (16-byte tag) for SRTP
/// and SRTCP, SSRC 0xcafebabe, master key 000102...0f, master salt a0...ab.
#[test]
fn libsrtp_srtp_validate_gcm_srtcp() {
    let keys = keys_from_hex(
        CryptoSuite::AeadAes128Gcm,
        "000102030405060708090a0b0c0d0e0f",
        "a0a1a2a3a4a5a6a7a8a9aaab",
    );
    let plain = hex("81c8000b cafebabe  abababab abababab  abababab abababab");
    let wire = hex("81c8000b cafebabe
         c98b8b5d f0392a55  852b6c21 ac8e7025
         c52c6fbe a2b3b446  ea31123b a88ce61e
         80000001");
    // ciphertext 16 | GCM tag c52c6fbe...a88ce61e | E + index 1
    known_answer(&keys, &plain, &wire);
}

// ---------------------------------------------------------------------------
// libsrtp 2.5.0, generated for this file
// ---------------------------------------------------------------------------

/// The compound every libsrtp 2.5.0 vector protects: RR from 0x0badcafe
/// with one report block about 0xcafebabe (fraction 0x19, cumulative lost
/// 3, highest seq 0x00012345, jitter 0x42, LSR 0x12345678, DLSR 0x8000),
/// then SDES CNAME "mbx".
const LIBSRTP_PLAIN: &str = "
    81c90007 0badcafe                                   RR, length 7, SSRC
    cafebabe 19000003 00012345 00000042 12345678 00008000   report block
    81ca0003 0badcafe 01036d62 78000000                 SDES CNAME mbx, END, pad";

fn strip_comments(s: &str) -> String {
    s.lines()
        .map(|l| {
            l.split_whitespace()
                .take_while(|w| w.bytes().all(|b| b.is_ascii_hexdigit()))
                .collect::<String>()
        })
        .collect()
}

/// `srtp_protect_rtcp` on three consecutive copies of [`LIBSRTP_PLAIN`]
/// (SRTCP indices 1, 2, 3) with `ssrc_any_outbound`, window 128.
struct LibsrtpVector {
    suite: CryptoSuite,
    key: &'static str,
    salt: &'static str,
    packets: [&'static str; 3],
}

const AES_CM_PACKETS: [&str; 3] = [
    "81c90007 0badcafe 1bcbc28d 5a3470f3 abaf73e6 13ba6d2d c02cf9c8 c4513d4a
     597c05b5 a3676051 a9ee83f5 57c4c715 80000001 2091b95c 645b15d5 2c5b",
    "81c90007 0badcafe 412e54e6 8ba89c61 da509b92 83bde288 194439bc 8664ab76
     bc31b368 ab4eea50 a8f419dc a8ce5e16 80000002 34eec65c 986666fa 3c7a",
    "81c90007 0badcafe a31f7ae9 631f474a 60831057 1c7c4a26 07ba9e10 0fbb3d3b
     887e0929 15883ccd b68f82aa c3f9df40 80000003 6a0c6804 4052439e d0dd",
];

const LIBSRTP_VECTORS: [LibsrtpVector; 4] = [
    // srtp_crypto_policy_set_rtp_default + srtp_crypto_policy_set_rtcp_default.
    LibsrtpVector {
        suite: CryptoSuite::AesCm128HmacSha1_80,
        key: "e1f97a0d3e018be0d64fa32c06de4139",
        salt: "0ec675ad498afeebb6960b3aabe6",
        packets: AES_CM_PACKETS,
    },
    // srtp_crypto_policy_set_aes_cm_128_hmac_sha1_32 for SRTP and the
    // default (80-bit tag) for SRTCP, as RFC 4568 / RFC 5764 pair them: the
    // SRTCP packets are the _80 ones, byte for byte.
    LibsrtpVector {
        suite: CryptoSuite::AesCm128HmacSha1_32,
        key: "e1f97a0d3e018be0d64fa32c06de4139",
        salt: "0ec675ad498afeebb6960b3aabe6",
        packets: AES_CM_PACKETS,
    },
    // srtp_crypto_policy_set_aes_gcm_128_16_auth for SRTP and SRTCP.
    LibsrtpVector {
        suite: CryptoSuite::AeadAes128Gcm,
        key: "000102030405060708090a0b0c0d0e0f",
        salt: "a0a1a2a3a4a5a6a7a8a9aaab",
        packets: [
            "81c90007 0badcafe 87d3162a adffdf38 15219f5d 6fe9f319 e759e0ec b7239947
             6515bc47 02bc3b70 68b91b17 fe662fdc 86218b35 c49cc18d 3e837100 0fdf3f73 80000001",
            "81c90007 0badcafe 1f372479 42f61c3d c22db1bc de23984a 0809847f c07c0712
             c39c4bc2 00c83dc2 494a1d45 f0a459ac 5cae4922 d5a2a714 c95d5ee1 d82fd850 80000002",
            "81c90007 0badcafe 27b5dc39 89b740a6 81f3ec42 30a491bf 361f94ae 780739c0
             92f1029e 87f7a519 d7c9282b 3aaebdc2 63f75e4f d693925e d9ddf04f e65b7401 80000003",
        ],
    },
    // srtp_crypto_policy_set_aes_gcm_256_16_auth for SRTP and SRTCP.
    LibsrtpVector {
        suite: CryptoSuite::AeadAes256Gcm,
        key: "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
        salt: "a0a1a2a3a4a5a6a7a8a9aaab",
        packets: [
            "81c90007 0badcafe 006bed18 1b99a318 dba66e10 d839e06c c311a415 8a1745a6
             1f7b9a1e 73f27f4b 9eff2a86 262e4bff 5d94a27c ba11dfda c00b2b78 1dd2446e 80000001",
            "81c90007 0badcafe 4fc3d192 8f980af8 aa6c23b0 84f00f2f 8c60273c 332b00ff
             9fd48316 fdfcc1af d775b263 e7a20593 242dce94 67967285 3c36d6eb 342c3f39 80000002",
            "81c90007 0badcafe dc263336 37f8a57e 73ebd66b 9ac2678c 778625ab 6526f087
             1e2feffe 1fe8e3cf 35ecc95b 30d86801 50539b0a 255c5609 e1f9bdd3 44725a67 80000003",
        ],
    },
];

#[test]
fn libsrtp_250_every_suite_both_directions() {
    let plain = hex(&strip_comments(LIBSRTP_PLAIN));
    assert_eq!(plain.len(), 48);
    for v in &LIBSRTP_VECTORS {
        let keys = keys_from_hex(v.suite, v.key, v.salt);
        let wire: Vec<Vec<u8>> = v.packets.iter().map(|p| hex(p)).collect();

        // Our writer reproduces libsrtp byte for byte, index 1, 2, 3.
        let mut writer = SrtcpWriter::new(&keys).unwrap();
        let mut out = Vec::new();
        for (i, expected) in wire.iter().enumerate() {
            assert_eq!(expected.len(), plain.len() + v.suite.srtcp_overhead());
            writer.encrypt(&plain, &mut out).unwrap();
            assert_eq!(&out, expected, "{} packet {}", v.suite, i + 1);
            assert_eq!(
                srtcp_trailer(expected, v.suite.srtcp_tag_len()),
                Some((true, i as u32 + 1))
            );
        }

        // Our reader takes libsrtp's packets, in any order within the
        // window, once each.
        let mut reader = SrtcpReader::new(&keys).unwrap();
        for i in [2, 0, 1] {
            reader.decrypt(&wire[i], &mut out).unwrap();
            assert_eq!(out, plain, "{} packet {}", v.suite, i + 1);
        }
        for w in &wire {
            assert_eq!(reader.decrypt(w, &mut out), Err(SrtpError::Replayed), "{}", v.suite);
        }
    }
}

// ---------------------------------------------------------------------------
// RFC 7714 §17 (session keys: primitive + trailer)
// ---------------------------------------------------------------------------

/// RFC 7714 §17 SRTCP examples for AEAD_AES_128_GCM and AEAD_AES_256_GCM. Session key 000102...0f (or ...1f), session salt "Quid pro quo"
/// (517569642070726f2071756f), SSRC 0x4d617273, SRTCP index 0x5d4.
///
/// IV (§9.1) = salt XOR (00 00 || SSRC || 00 00 || 0 || index), AAD (§9)
/// = the clear 8 bytes || the E + index word; the packet is
/// header || ciphertext || 16-byte tag || E + index.
#[test]
fn rfc7714_srtcp_examples() {
    let plain = hex("81c8000d 4d617273 4e545031 4e545032
         52545020 0000042a 0000e930 4c756e61
         deadbeef deadbeef deadbeef deadbeef
         deadbeef");
    let salt = hex("517569642070726f2071756f");
    let cases = [
        (
            AeadAlgorithm::Aes128Gcm,
            hex("000102030405060708090a0b0c0d0e0f"),
            hex("81c8000d 4d617273 63e94885 dcdab67c
                 a727d766 2f6b7e99 7ff5c0f7 6c06f32d
                 c676a5f1 730d6fda 4ce09b46 86303ded
                 0bb9275b c84aa458 96cf4d2f c5abf872
                 45d9eade 800005d4"),
        ),
        (
            AeadAlgorithm::Aes256Gcm,
            hex("000102030405060708090a0b0c0d0e0f 101112131415161718191a1b1c1d1e1f"),
            hex("81c8000d 4d617273 d50ae4d1 f5ce5d30
                 4ba297e4 7d470c28 2c3ece5d bffe0a50
                 a2eaa5c1 110555be 8415f658 c61de047
                 6f1b6fad 1d1eb30c 4446839f 57ff6f6c
                 b26ac3be 800005d4"),
        ),
    ];
    let provider = rtc_crypto::default_provider().unwrap();
    for (algorithm, key, wire) in cases {
        // The keyless view: E set, index 0x5d4, 16-byte tag before the word.
        assert_eq!(
            srtcp_trailer(&wire, CryptoSuite::AeadAes128Gcm.srtcp_tag_len()),
            Some((true, 0x5d4))
        );
        assert_eq!(wire.len(), plain.len() + CryptoSuite::AeadAes128Gcm.srtcp_overhead());

        let mut iv = [0u8; 12];
        iv[2..6].copy_from_slice(&wire[4..8]);
        iv[8..].copy_from_slice(&0x5d4u32.to_be_bytes());
        iv.iter_mut().zip(&salt).for_each(|(b, s)| *b ^= s);
        let mut aad = wire[..8].to_vec();
        aad.extend_from_slice(&wire[wire.len() - 4..]);

        let tag_at = wire.len() - 4 - 16;
        let mut body = wire[8..tag_at].to_vec();
        let mut aead = provider.crypto().new_aead(algorithm, &key).unwrap();
        aead.open_in_place(&iv, &aad, &mut body, &wire[tag_at..tag_at + 16])
            .unwrap();
        assert_eq!(body, plain[8..], "{algorithm:?}");

        // And the other way: sealing the plaintext gives the RFC's bytes.
        let mut sealed = plain[8..].to_vec();
        let mut tag = [0u8; 16];
        aead.seal_in_place(&iv, &aad, &mut sealed, &mut tag).unwrap();
        assert_eq!(
            [&wire[..8], &sealed[..], &tag[..], &wire[wire.len() - 4..]].concat(),
            wire
        );
    }

    // §17's authentication-only form (E = 0): the trailer shows it, and the
    // reader refuses such packets (checked on our own below).
    let auth_only = hex("81c8000d 4d617273 4e545031 4e545032
         52545020 0000042a 0000e930 4c756e61
         deadbeef deadbeef deadbeef deadbeef
         deadbeef 841dd968 3dd78ec9 2ae58790
         125f62b3 000005d4");
    assert_eq!(srtcp_trailer(&auth_only, 0), Some((false, 0x5d4)));
    // Its tag covers the whole clear packet and the E + index word as AAD
    // with an empty plaintext (RFC 7714 §9, AES-128 key above).
    let mut aad = auth_only[..auth_only.len() - 20].to_vec();
    assert_eq!(aad, plain);
    aad.extend_from_slice(&auth_only[auth_only.len() - 4..]);
    let mut iv = [0u8; 12];
    iv[2..6].copy_from_slice(&auth_only[4..8]);
    iv[8..].copy_from_slice(&0x5d4u32.to_be_bytes());
    iv.iter_mut().zip(&salt).for_each(|(b, s)| *b ^= s);
    let mut aead = provider
        .crypto()
        .new_aead(AeadAlgorithm::Aes128Gcm, &hex("000102030405060708090a0b0c0d0e0f"))
        .unwrap();
    let tag = &auth_only[auth_only.len() - 20..auth_only.len() - 4];
    aead.open_in_place(&iv, &aad, &mut [], tag).unwrap();
}

// ---------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------

#[test]
fn every_suite_round_trips() {
    let mut rng = Rng(1);
    for suite in CryptoSuite::ALL {
        for keys in [rng.keys(suite), SrtpKeys::generate(suite).unwrap()] {
            let mut writer = SrtcpWriter::new(&keys).unwrap();
            let mut reader = SrtcpReader::new(&keys).unwrap();
            let (mut wire, mut out) = (Vec::new(), Vec::new());
            for i in 0..60u32 {
                // Two senders interleaved (the proxy's SSRC and another),
                // each with its own index sequence.
                let ssrc = if i % 3 == 0 { 0x5052_4f58 } else { 0x0bad_cafe };
                let plain = compound(ssrc, (i % 5) as u8, &mut rng);
                writer.encrypt(&plain, &mut wire).unwrap();
                assert_eq!(wire.len(), plain.len() + suite.srtcp_overhead());
                assert_eq!(wire[..8], plain[..8], "header and SSRC stay clear");
                assert_ne!(wire[8..plain.len()], plain[8..], "{suite}: payload is encrypted");
                let expected_index = if i % 3 == 0 { i / 3 + 1 } else { i - i / 3 };
                assert_eq!(
                    srtcp_trailer(&wire, suite.srtcp_tag_len()),
                    Some((true, expected_index)),
                    "{suite} {i}"
                );
                reader.decrypt(&wire, &mut out).unwrap();
                assert_eq!(out, plain, "{suite} packet {i}");
            }
            assert_eq!(reader.senders(), 2);
        }
    }
}

#[test]
fn wrong_keys_fail_authentication() {
    let mut rng = Rng(2);
    for suite in CryptoSuite::ALL {
        let (a, b) = (rng.keys(suite), rng.keys(suite));
        let mut wire = Vec::new();
        SrtcpWriter::new(&a)
            .unwrap()
            .encrypt(&compound(9, 1, &mut rng), &mut wire)
            .unwrap();
        let mut out = Vec::new();
        assert_eq!(
            SrtcpReader::new(&b).unwrap().decrypt(&wire, &mut out),
            Err(SrtpError::AuthFailed),
            "{suite}"
        );
        // Same key bytes, other suite of the same lengths: also refused.
        if suite == CryptoSuite::AesCm128HmacSha1_80 {
            let other = SrtpKeys::new(CryptoSuite::AesCm128HmacSha1_32, a.master_key(), a.master_salt()).unwrap();
            // The two AES-CM suites share the SRTCP transform (80-bit tag).
            SrtcpReader::new(&other).unwrap().decrypt(&wire, &mut out).unwrap();
        }
    }
}

#[test]
fn any_single_bit_flip_is_refused() {
    let mut rng = Rng(3);
    for suite in CryptoSuite::ALL {
        let (keys, wire) = keys_and_protected_compound(&mut rng, suite, 0x1234_5678, 2);
        let word_at = wire.len() - suite.srtcp_tag_len() - 4;
        let mut reader = SrtcpReader::new(&keys).unwrap();
        let mut out = Vec::new();
        for bit in 0..wire.len() * 8 {
            let mut bad = wire.clone();
            bad[bit / 8] ^= 0x80 >> (bit % 8);
            let got = reader.decrypt(&bad, &mut out);
            let expected: &[SrtpError] = match bit {
                0 | 1 => &[SrtpError::BadVersion],
                b if b == word_at * 8 => &[SrtpError::Unencrypted],
                // Index bits: a far-off index may already count as too old.
                b if b / 8 >= word_at && b / 8 < word_at + 4 => &[SrtpError::AuthFailed, SrtpError::Replayed],
                _ => &[SrtpError::AuthFailed],
            };
            assert!(expected.contains(&got.unwrap_err()), "{suite}: bit {bit} gave {got:?}");
        }
        // None of that touched the replay state.
        reader.decrypt(&wire, &mut out).unwrap();
    }
}

#[test]
fn replays_and_stale_indices_are_refused() {
    let mut rng = Rng(4);
    for suite in CryptoSuite::ALL {
        let keys = rng.keys(suite);
        let packets = protected_run(&keys, 300, 77, &mut rng);
        let mut reader = SrtcpReader::new(&keys).unwrap();
        let mut out = Vec::new();
        reader.decrypt(&packets[0], &mut out).unwrap();
        assert_eq!(
            reader.decrypt(&packets[0], &mut out),
            Err(SrtpError::Replayed),
            "{suite}"
        );
        // Skip ahead, then fill the gap out of order: all accepted once.
        reader.decrypt(&packets[10], &mut out).unwrap();
        for i in (1..10).rev() {
            reader.decrypt(&packets[i], &mut out).unwrap();
        }
        for p in &packets[..=10] {
            assert_eq!(reader.decrypt(p, &mut out), Err(SrtpError::Replayed), "{suite}");
        }
        // Move the window past index 12 (packet 11, index 12) unseen: it is
        // then older than the window and refused without being looked at.
        let last = 11 + SRTCP_REPLAY_WINDOW as usize;
        reader.decrypt(&packets[last], &mut out).unwrap();
        assert_eq!(
            reader.decrypt(&packets[11], &mut out),
            Err(SrtpError::Replayed),
            "{suite}"
        );
        reader.decrypt(&packets[12], &mut out).unwrap();
    }
}

#[test]
fn unencrypted_srtcp_is_refused() {
    // Clearing E must not let a packet through, tag or no tag: rtc-srtp
    // would return an AES-CM packet with E = 0 unauthenticated.
    let mut rng = Rng(5);
    for suite in CryptoSuite::ALL {
        let keys = rng.keys(suite);
        let plain = compound(5, 1, &mut rng);
        let wire = protect(&keys, &plain);
        let word_at = wire.len() - suite.srtcp_tag_len() - 4;
        // An attacker's RTCP in the clear, E = 0, garbage tag.
        let mut forged = plain.clone();
        forged.extend_from_slice(&wire[plain.len()..]);
        forged[word_at] &= 0x7f;
        let mut out = Vec::new();
        assert_eq!(
            SrtcpReader::new(&keys).unwrap().decrypt(&forged, &mut out),
            Err(SrtpError::Unencrypted)
        );
        assert_eq!(srtcp_trailer(&forged, suite.srtcp_tag_len()), Some((false, 1)));
    }
}

#[test]
fn truncations_error_without_panicking() {
    let mut rng = Rng(6);
    for suite in CryptoSuite::ALL {
        let (keys, wire) = keys_and_protected_compound(&mut rng, suite, 3, 1);
        let mut reader = SrtcpReader::new(&keys).unwrap();
        let mut out = Vec::new();
        for len in 0..wire.len() {
            let got = reader.decrypt(&wire[..len], &mut out).unwrap_err();
            if len < 8 + suite.srtcp_overhead() {
                assert_eq!(got, SrtpError::TooShort, "{suite} len {len}");
            } else {
                assert!(
                    matches!(
                        got,
                        SrtpError::AuthFailed | SrtpError::Replayed | SrtpError::Unencrypted
                    ),
                    "{got:?}"
                );
            }
        }
        // Extra bytes at the end move the trailer: refused as well.
        let mut longer = wire.clone();
        longer.push(0);
        assert!(reader.decrypt(&longer, &mut out).is_err());
        reader.decrypt(&wire, &mut out).unwrap();
    }
    // The writer refuses what is not an RTCP header.
    let mut writer = SrtcpWriter::new(&Rng(7).keys(CryptoSuite::AeadAes128Gcm)).unwrap();
    let mut out = vec![1, 2, 3];
    assert_eq!(
        writer.encrypt(&[0x80, 0xc9, 0, 1, 0, 0, 0], &mut out),
        Err(SrtpError::TooShort)
    );
    assert_eq!(
        writer.encrypt(&[0x40, 0xc9, 0, 1, 0, 0, 0, 1], &mut out),
        Err(SrtpError::BadVersion)
    );
    assert_eq!(out, [1, 2, 3]);
}

#[test]
fn trailer_helper_layouts() {
    let mut rng = Rng(8);
    for suite in CryptoSuite::ALL {
        let keys = rng.keys(suite);
        let mut writer = SrtcpWriter::new(&keys).unwrap();
        let mut wire = Vec::new();
        for index in 1..=5u32 {
            writer
                .encrypt(&compound(0xfeed, index as u8 % 3, &mut rng), &mut wire)
                .unwrap();
            assert_eq!(srtcp_trailer(&wire, suite.srtcp_tag_len()), Some((true, index)));
        }
        let min = 8 + 4 + suite.srtcp_tag_len();
        assert!(srtcp_trailer(&wire[..min], suite.srtcp_tag_len()).is_some());
        assert_eq!(srtcp_trailer(&wire[..min - 1], suite.srtcp_tag_len()), None);
    }
    assert_eq!(srtcp_trailer(&[], 0), None);
    assert_eq!(srtcp_trailer(&[0; 12], usize::MAX), None);
    assert_eq!(
        srtcp_trailer(&[0x80, 0xc9, 0, 1, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff], 0),
        Some((true, 0x7fff_ffff))
    );
}

fn suite_strategy() -> impl Strategy<Value = CryptoSuite> {
    prop::sample::select(CryptoSuite::ALL.to_vec())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// Arbitrary bytes, and arbitrary bytes behind a plausible SRTCP prefix,
    /// never panic and never decrypt.
    #[test]
    fn random_bytes_never_panic(suite in suite_strategy(), mut bytes in prop::collection::vec(any::<u8>(), 0..200), plausible in any::<bool>()) {
        let keys = SrtpKeys::new(suite, &vec![0x42; suite.master_key_len()], &vec![0x24; suite.master_salt_len()]).unwrap();
        let mut reader = SrtcpReader::new(&keys).unwrap();
        if plausible && bytes.len() >= 8 + suite.srtcp_overhead() {
            bytes[0] = 0x80 | (bytes[0] & 0x3f);
            let at = bytes.len() - suite.srtcp_tag_len() - 4;
            bytes[at] |= 0x80;
        }
        let mut out = Vec::new();
        prop_assert!(reader.decrypt(&bytes, &mut out).is_err());
        let _ = srtcp_trailer(&bytes, 10);
        let _ = srtcp_trailer(&bytes, 0);
        let mut writer = SrtcpWriter::new(&keys).unwrap();
        let _ = writer.encrypt(&bytes, &mut out);
    }

    /// Random edits of a valid packet are refused and leave the reader able
    /// to take the original.
    #[test]
    fn mutated_packets_are_refused(suite in suite_strategy(), edits in prop::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..4)) {
        let keys = SrtpKeys::new(suite, &vec![0x11; suite.master_key_len()], &vec![0x22; suite.master_salt_len()]).unwrap();
        let wire = protect(&keys, &compound(0xabcd, 1, &mut Rng(9)));
        let mut bad = wire.clone();
        for (at, x) in &edits {
            let i = at.index(bad.len());
            bad[i] ^= x;
        }
        let mut reader = SrtcpReader::new(&keys).unwrap();
        let mut out = Vec::new();
        if bad != wire {
            prop_assert!(reader.decrypt(&bad, &mut out).is_err());
        }
        prop_assert!(reader.decrypt(&wire, &mut out).is_ok());
    }
}
