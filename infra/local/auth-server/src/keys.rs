//! Signing keys: HS256 with a shared secret, or ES256 with a P-256 key published as a JWK.

use std::path::PathBuf;

use aws_lc_rs::{
    digest,
    rand::SystemRandom,
    signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair},
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Serialize, de::DeserializeOwned};
use serde_json::{Value, json};

pub struct Signer {
    alg: Algorithm,
    kid: Option<String>,
    encoding: EncodingKey,
    decoding: DecodingKey,
    jwk: Option<Value>,
}

impl Signer {
    pub fn hs256(secret: String) -> Self {
        Self {
            alg: Algorithm::HS256,
            kid: None,
            encoding: EncodingKey::from_secret(secret.as_bytes()),
            decoding: DecodingKey::from_secret(secret.as_bytes()),
            jwk: None,
        }
    }

    /// Loads the PKCS#8 key from `file`, or makes one (and saves it there, so restarts keep
    /// the tokens already issued valid).
    pub fn es256(file: Option<PathBuf>) -> Result<Self, String> {
        let existing = file.as_ref().and_then(|f| std::fs::read(f).ok());
        let pkcs8 = match existing {
            Some(bytes) => bytes,
            None => {
                let doc = EcdsaKeyPair::generate_pkcs8(
                    &ECDSA_P256_SHA256_FIXED_SIGNING,
                    &SystemRandom::new(),
                )
                .map_err(|_| "could not generate an ES256 key".to_string())?;
                let bytes = doc.as_ref().to_vec();
                if let Some(f) = &file {
                    std::fs::write(f, &bytes)
                        .map_err(|e| format!("cannot write {}: {e}", f.display()))?;
                }
                bytes
            }
        };
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &pkcs8)
            .map_err(|_| "the ES256 key file is not a P-256 PKCS#8 key".to_string())?;
        let point = pair.public_key().as_ref(); // 0x04 || X || Y
        if point.len() != 65 {
            return Err("unexpected P-256 public key encoding".into());
        }
        let (x, y) = (
            URL_SAFE_NO_PAD.encode(&point[1..33]),
            URL_SAFE_NO_PAD.encode(&point[33..]),
        );
        let kid = hex(&digest::digest(&digest::SHA256, point).as_ref()[..8]);
        let jwk = json!({
            "kty": "EC", "crv": "P-256", "x": x, "y": y, "kid": kid, "alg": "ES256",
            "use": "sig", "key_ops": ["verify"],
        });
        Ok(Self {
            alg: Algorithm::ES256,
            kid: Some(kid),
            encoding: EncodingKey::from_ec_der(&pkcs8),
            decoding: DecodingKey::from_ec_components(&x, &y).map_err(|e| e.to_string())?,
            jwk: Some(jwk),
        })
    }

    pub fn sign<T: Serialize>(&self, claims: &T) -> String {
        let mut header = Header::new(self.alg);
        header.kid = self.kid.clone();
        jsonwebtoken::encode(&header, claims, &self.encoding).expect("signing with a valid key")
    }

    /// Verifies signature and expiry; audience is not checked (GoTrue accepts any `aud`).
    pub fn verify<T: DeserializeOwned>(&self, token: &str) -> Result<T, String> {
        let mut validation = Validation::new(self.alg);
        validation.validate_aud = false;
        validation.leeway = 0;
        jsonwebtoken::decode::<T>(token, &self.decoding, &validation)
            .map(|d| d.claims)
            .map_err(|e| e.to_string())
    }

    pub fn jwks(&self) -> Value {
        json!({ "keys": self.jwk.iter().collect::<Vec<_>>() })
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
