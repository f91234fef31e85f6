//! A throwaway CA and a leaf certificate for one host name, written as PEM files.

use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
use std::path::PathBuf;

pub struct Pki {
    pub ca_pem: String,
    pub ca_file: PathBuf,
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    pub cert_pem: String,
    pub key_pem: String,
    _dir: tempfile::TempDir,
}

impl Pki {
    pub fn for_host(host: &str) -> Pki {
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_key = KeyPair::generate().unwrap();
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let leaf_key = KeyPair::generate().unwrap();
        let leaf = CertificateParams::new(vec![host.to_owned()])
            .unwrap()
            .signed_by(&leaf_key, &ca, &ca_key)
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            path
        };
        let (ca_pem, cert_pem, key_pem) = (ca.pem(), leaf.pem(), leaf_key.serialize_pem());
        Pki {
            ca_file: write("ca.pem", &ca_pem),
            cert_file: write("cert.pem", &cert_pem),
            key_file: write("key.pem", &key_pem),
            ca_pem,
            cert_pem,
            key_pem,
            _dir: dir,
        }
    }
}
