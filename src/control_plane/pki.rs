//! Keys and certificates for a local control plane: one CA, the apiserver's serving certificate,
//! an admin client certificate and the service-account signing key.

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};
use std::net::{IpAddr, Ipv4Addr};

/// PEM-encoded material a control plane needs, generated fresh for every start.
pub struct Pki {
    /// The CA that signed the serving and client certificates.
    pub ca_cert: String,
    /// The apiserver's serving certificate (SANs `127.0.0.1`, `localhost`).
    pub serving_cert: String,
    /// The serving certificate's private key.
    pub serving_key: String,
    /// A client certificate for user `kfop-admin` in group `system:masters`.
    pub admin_cert: String,
    /// The admin client certificate's private key.
    pub admin_key: String,
    /// The key that signs service-account tokens.
    pub service_account_key: String,
    /// Its public half, which verifies them.
    pub service_account_public_key: String,
}

impl Pki {
    /// Generates a new CA and everything it signs.
    pub fn generate() -> Result<Self, rcgen::Error> {
        let mut ca_params = CertificateParams::default();
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "kfop-local-ca");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate()?)?;

        let mut serving = CertificateParams::new(vec!["localhost".to_string()])?;
        serving
            .subject_alt_names
            .push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        serving
            .distinguished_name
            .push(DnType::CommonName, "kube-apiserver");
        serving.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let serving_key = KeyPair::generate()?;
        let serving_cert = serving.signed_by(&serving_key, &ca)?;

        let mut admin = CertificateParams::default();
        admin.distinguished_name = rcgen::DistinguishedName::new();
        admin
            .distinguished_name
            .push(DnType::CommonName, "kfop-admin");
        admin
            .distinguished_name
            .push(DnType::OrganizationName, "system:masters");
        admin.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let admin_key = KeyPair::generate()?;
        let admin_cert = admin.signed_by(&admin_key, &ca)?;

        let service_account = KeyPair::generate()?;
        Ok(Self {
            ca_cert: ca.pem(),
            serving_cert: serving_cert.pem(),
            serving_key: serving_key.serialize_pem(),
            admin_cert: admin_cert.pem(),
            admin_key: admin_key.serialize_pem(),
            service_account_key: service_account.serialize_pem(),
            service_account_public_key: service_account.public_key_pem(),
        })
    }
}
