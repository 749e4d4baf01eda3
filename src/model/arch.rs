//! Named architectures: `resnet18` … `resnet152`, `resnet20` … `resnet110` (any 6n+2),
//! and their plain twins `plain18`, `plain20`, …

use super::config::{BlockKind, ResNetConfig, ShortcutOption, Stem};

/// Why a name is not an architecture.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown architecture '{0}': expected resnet18/34/50/101/152 (ImageNet), resnet20/32/44/56/110 \
     or any resnet{{6n+2}} (CIFAR), their plain twins plain18 … plain110, or cifar-resnet{{6n+2}} \
     to force the CIFAR family"
)]
pub struct UnknownArch(pub String);

/// Blocks per stage and block kind of the five ImageNet nets of Table 1.
pub fn imagenet_preset(depth: usize) -> Option<(BlockKind, [usize; 4])> {
    match depth {
        18 => Some((BlockKind::Basic, [2, 2, 2, 2])),
        34 => Some((BlockKind::Basic, [3, 4, 6, 3])),
        50 => Some((BlockKind::Bottleneck, [3, 4, 6, 3])),
        101 => Some((BlockKind::Bottleneck, [3, 4, 23, 3])),
        152 => Some((BlockKind::Bottleneck, [3, 8, 36, 3])),
        _ => None,
    }
}

/// The ImageNet net of the given depth (18, 34, 50, 101, 152): option B, v1.5, 1000 classes.
pub fn imagenet(depth: usize) -> Option<ResNetConfig> {
    let (block, layers) = imagenet_preset(depth)?;
    Some(ResNetConfig::new(
        layers.to_vec(),
        block,
        Stem::ImageNet,
        64,
    ))
}

/// The CIFAR net with `n` blocks per stage (6n+2 layers): option A, 10 classes.
pub fn cifar(n: usize) -> ResNetConfig {
    ResNetConfig::new(vec![n, n, n], BlockKind::Basic, Stem::Cifar, 16)
        .with_num_classes(10)
        .with_shortcut(ShortcutOption::A)
}

/// Parses an architecture name into its default configuration.
///
/// ImageNet names win where both families have a net of that depth (50 and 152 are also
/// 6n+2): use `cifar-resnet50` for the CIFAR one.
pub fn parse(name: &str) -> Result<ResNetConfig, UnknownArch> {
    let lower = name.trim().to_ascii_lowercase();
    let unknown = || UnknownArch(name.to_string());
    let (force_cifar, rest) = match lower.strip_prefix("cifar-") {
        Some(rest) => (true, rest),
        None => (false, lower.as_str()),
    };
    let (residual, digits) = if let Some(d) = rest.strip_prefix("resnet") {
        (true, d)
    } else if let Some(d) = rest.strip_prefix("plain") {
        (false, d)
    } else {
        return Err(unknown());
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(unknown());
    }
    let depth: usize = digits.parse().map_err(|_| unknown())?;
    let config = match imagenet(depth) {
        Some(config) if !force_cifar => config,
        _ if depth >= 8 && (depth - 2) % 6 == 0 => cifar((depth - 2) / 6),
        _ => return Err(unknown()),
    };
    Ok(config.with_residual(residual))
}

/// The architectures with published results, for listings and help texts.
pub const KNOWN: [&str; 10] = [
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet101",
    "resnet152",
    "resnet20",
    "resnet32",
    "resnet44",
    "resnet56",
    "resnet110",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_families_and_plain_twins() {
        let r50 = parse("resnet50").unwrap();
        assert_eq!(
            (r50.stem, r50.block, r50.depth()),
            (Stem::ImageNet, BlockKind::Bottleneck, 50)
        );
        let r110 = parse("ResNet110").unwrap();
        assert_eq!(
            (r110.stem, r110.layers.clone(), r110.depth()),
            (Stem::Cifar, vec![18, 18, 18], 110)
        );
        let p20 = parse("plain20").unwrap();
        assert!(!p20.residual);
        assert_eq!(p20.num_classes, 10);
        let c50 = parse("cifar-resnet50").unwrap();
        assert_eq!((c50.stem, c50.layers.clone()), (Stem::Cifar, vec![8, 8, 8]));
        assert_eq!(parse("resnet1202").unwrap().layers, vec![200, 200, 200]);
    }

    #[test]
    fn names_round_trip() {
        for name in KNOWN
            .iter()
            .chain(&["plain18", "plain56", "cifar-resnet50"])
        {
            assert_eq!(parse(name).unwrap().name(), *name);
        }
    }

    #[test]
    fn rejects_unknown_names() {
        for bad in [
            "resnet",
            "resnet19",
            "resnet-50",
            "vgg16",
            "plain7",
            "resnet2",
            "",
        ] {
            let err = parse(bad).unwrap_err();
            assert!(
                err.to_string().contains("unknown architecture"),
                "{bad}: {err}"
            );
        }
    }
}
