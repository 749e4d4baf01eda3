//! Named architectures: `resnet18` … `resnet152`, `resnet20` … `resnet110` (any 6n+2),
//! their plain twins `plain18`, `plain20`, …, and the successors that change only the block:
//! `resnext50_32x4d` (any `resnext{D}_{C}x{d}d`), `wide_resnet50_2`, `seresnet50`,
//! `seresnext50_32x4d`, and the CIFAR ResNeXt `resnext29_8x64d` (any 9n+2).

use super::config::{BlockKind, BlockVariant, ResNetConfig, ShortcutOption, Stem};

/// Why a name is not an architecture.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown architecture '{0}': expected resnet18/34/50/101/152 (ImageNet), resnet20/32/44/56/110 \
     or any resnet{{6n+2}} (CIFAR), their plain twins plain18 … plain110, cifar-resnet{{6n+2}} \
     to force the CIFAR family, or a successor: resnext50_32x4d, resnext101_32x8d, \
     resnext101_64x4d, resnext101_32x16d (any resnext{{50|101|152}}_{{C}}x{{d}}d), \
     wide_resnet50_2, wide_resnet101_2, seresnet18 … seresnet152, seresnext50_32x4d, and the \
     CIFAR ResNeXt resnext29_8x64d / resnext29_16x64d (any resnext{{9n+2}}_{{C}}x{{d}}d); a \
     plain- prefix removes the shortcuts of any of them"
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

/// The CIFAR ResNeXt of Xie et al. (section 5.3) with `n` bottlenecks per stage (9n+2
/// layers): a 3x3 stem of 64, stages of 256, 512 and 1024 output channels, projection
/// shortcuts, 10 classes. `variant` sets the cardinality and the width.
pub fn cifar_resnext(n: usize, variant: BlockVariant) -> ResNetConfig {
    ResNetConfig::new(vec![n, n, n], BlockKind::Bottleneck, Stem::Cifar, 64)
        .with_num_classes(10)
        .with_shortcut(ShortcutOption::B)
        .with_variant(Some(variant))
}

/// `digits` as a positive number, if it is only digits.
fn number(digits: &str) -> Option<usize> {
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) || digits.len() > 6 {
        return None;
    }
    digits.parse().ok().filter(|&n| n > 0)
}

/// The successors' names: `resnext{D}_{C}x{d}d` and `wide_resnet{D}_{k}`, after any `se`.
fn successor(rest: &str, se: bool, force_cifar: bool) -> Option<ResNetConfig> {
    let (depth, variant) = if let Some(rest) = rest.strip_prefix("resnext") {
        let (depth, shape) = rest.split_once('_')?;
        let (groups, width) = shape.strip_suffix('d')?.split_once('x')?;
        let variant = BlockVariant::new()
            .with_groups(number(groups)?)
            .with_width_per_group(number(width)?);
        (number(depth)?, variant)
    } else {
        let (depth, factor) = rest.strip_prefix("wide_resnet")?.split_once('_')?;
        let variant = BlockVariant::new().with_width_per_group(64 * number(factor)?);
        (number(depth)?, variant)
    };
    let variant = variant.with_squeeze_excitation(se);
    match imagenet_preset(depth) {
        Some((BlockKind::Bottleneck, _)) if !force_cifar => {
            Some(imagenet(depth)?.with_variant(Some(variant)))
        }
        _ if !rest.starts_with("wide") && depth >= 11 && (depth - 2) % 9 == 0 => {
            Some(cifar_resnext((depth - 2) / 9, variant))
        }
        _ => None,
    }
}

/// Parses an architecture name into its default configuration.
///
/// ImageNet names win where both families have a net of that depth (50 and 152 are also
/// 6n+2): use `cifar-resnet50` for the CIFAR one.
pub fn parse(name: &str) -> Result<ResNetConfig, UnknownArch> {
    let lower = name.trim().to_ascii_lowercase();
    let unknown = || UnknownArch(name.to_string());
    let (plain, rest) = match lower.strip_prefix("plain-") {
        Some(rest) => (true, rest),
        None => (false, lower.as_str()),
    };
    let (force_cifar, rest) = match rest.strip_prefix("cifar-") {
        Some(rest) => (true, rest),
        None => (false, rest),
    };
    let (se, rest) = match rest.strip_prefix("se") {
        Some(rest) if rest.starts_with("res") || rest.starts_with("wide_") => (true, rest),
        _ => (false, rest),
    };
    if rest.starts_with("resnext") || rest.starts_with("wide_resnet") {
        let config = successor(rest, se, force_cifar).ok_or_else(unknown)?;
        return Ok(config.with_residual(!plain));
    }
    let (residual, digits) = if let Some(d) = rest.strip_prefix("resnet") {
        (!plain, d)
    } else if let Some(d) = rest.strip_prefix("plain").filter(|_| !plain && !se) {
        (false, d)
    } else {
        return Err(unknown());
    };
    let depth = number(digits).ok_or_else(unknown)?;
    let config = match imagenet(depth) {
        Some(config) if !force_cifar => config,
        _ if depth >= 8 && (depth - 2) % 6 == 0 => cifar((depth - 2) / 6),
        _ => return Err(unknown()),
    };
    let config = match se {
        true => config.with_variant(Some(BlockVariant::new().with_squeeze_excitation(true))),
        false => config,
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

/// The successors with published weights or results (torchvision, timm and the ResNeXt
/// paper's CIFAR nets), for listings and help texts.
pub const SUCCESSORS: [&str; 11] = [
    "resnext50_32x4d",
    "resnext101_32x8d",
    "resnext101_64x4d",
    "resnext101_32x16d",
    "wide_resnet50_2",
    "wide_resnet101_2",
    "seresnet50",
    "seresnext50_32x4d",
    "seresnext101_32x8d",
    "resnext29_8x64d",
    "resnext29_16x64d",
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
    fn parses_the_successors() {
        let x50 = parse("resnext50_32x4d").unwrap();
        let v = x50.block_variant();
        assert_eq!(
            (x50.layers.clone(), x50.stem),
            (vec![3, 4, 6, 3], Stem::ImageNet)
        );
        assert_eq!(
            (v.groups, v.width_per_group, v.squeeze_excitation),
            (32, 4, false)
        );
        let wide = parse("wide_resnet101_2").unwrap().block_variant();
        assert_eq!((wide.groups, wide.width_per_group), (1, 128));
        let se = parse("seresnext50_32x4d").unwrap().block_variant();
        assert_eq!(
            (se.groups, se.width_per_group, se.squeeze_excitation),
            (32, 4, true)
        );
        let se18 = parse("seresnet18").unwrap();
        assert_eq!(se18.block, BlockKind::Basic);
        assert!(se18.block_variant().squeeze_excitation);
        let cifar = parse("resnext29_8x64d").unwrap();
        assert_eq!(
            (
                cifar.stem,
                cifar.layers.clone(),
                cifar.num_classes,
                cifar.shortcut
            ),
            (Stem::Cifar, vec![3, 3, 3], 10, ShortcutOption::B)
        );
        assert_eq!(cifar.block_variant().bottleneck_width(64), 512);
        let plain = parse("plain-resnext50_32x4d").unwrap();
        assert!(!plain.residual);
        // The 2015 nets carry no variant, as their weights files written before it existed.
        assert_eq!(parse("resnet50").unwrap().variant, None);
    }

    #[test]
    fn names_round_trip() {
        for name in KNOWN.iter().chain(&SUCCESSORS).chain(&[
            "plain18",
            "plain56",
            "cifar-resnet50",
            "seresnet20",
            "plain-resnext50_32x4d",
            "plain-seresnet34",
            "resnext152_1x48d",
        ]) {
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
            "resnext18_32x4d",
            "resnext50_32x4",
            "resnext50_0x4d",
            "resnext50-32x4d",
            "wide_resnet50_0",
            "wide_resnet29_2",
            "resnext30_8x64d",
            "seplain20",
            "plain-plain20",
            "resnext50_99999999999x4d",
        ] {
            let err = parse(bad).unwrap_err();
            assert!(
                err.to_string().contains("unknown architecture"),
                "{bad}: {err}"
            );
        }
    }
}
