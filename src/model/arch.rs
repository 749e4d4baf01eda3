//! Named architectures: `resnet18` … `resnet152`, `resnet20` … `resnet110` (any 6n+2),
//! their plain twins `plain18`, `plain20`, …, and the successors that change only the block:
//! `resnext50_32x4d` (any `resnext{D}_{C}x{d}d`), `wide_resnet50_2`, `seresnet50`,
//! `seresnext50_32x4d`, and the CIFAR ResNeXt `resnext29_8x64d` (any 9n+2); the
//! pre-activation nets (He et al. 2016): timm's `resnetv2_50`, the CIFAR `preact_resnet110`
//! and `preact_resnet164`, and Wide ResNet's CIFAR `wrn28_10` (any `wrn{6n+4}_{k}`); ResNeSt
//! (`resnest50d`, Zhang et al. 2020) and the deep stems of ResNet-C/D/S/E (`resnet50d`, He et
//! al. 2019) by timm's names.

use super::config::{BlockKind, BlockVariant, ResNetConfig, ShortcutOption, Stem};

/// Why a name is not an architecture.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown architecture '{0}': expected resnet18/34/50/101/152 (ImageNet), resnet20/32/44/56/110 \
     or any resnet{{6n+2}} (CIFAR), their plain twins plain18 … plain110, cifar-resnet{{6n+2}} \
     to force the CIFAR family, or a successor: resnext50_32x4d, resnext101_32x8d, \
     resnext101_64x4d, resnext101_32x16d (any resnext{{50|101|152}}_{{C}}x{{d}}d), \
     wide_resnet50_2, wide_resnet101_2, seresnet18 … seresnet152, seresnext50_32x4d, and the \
     CIFAR ResNeXt resnext29_8x64d / resnext29_16x64d (any resnext{{9n+2}}_{{C}}x{{d}}d), the \
     pre-activation nets resnetv2_18 … resnetv2_152 (ImageNet), preact_resnet110 and \
     preact_resnet164 (any preact_resnet{{6n+2}} or {{9n+2}}, CIFAR) and Wide ResNet's CIFAR \
     wrn16_4, wrn28_10 (any wrn{{6n+4}}_{{k}}), ResNeSt's resnest14d, resnest26d, resnest50d, \
     resnest101e, resnest200e, resnest269e (and resnest50d_{{R}}s{{C}}x{{W}}d), and ResNet-C/D/S/E's \
     deep stems with a letter after any ImageNet depth (resnet50d, resnext50d_32x4d); a plain- \
     prefix removes the shortcuts of any of them. DenseNets (densenet121/169/201/161, \
     densenet_bc{{6n+4}}_{{k}}) and inception_resnet_v2 are counted by `resnet info`, run by `resnet logits` and loaded through \
     the Rust API only, so far"
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

/// The pre-activation block: the blocks of `config` reordered to BN-ReLU-conv, with
/// projection shortcuts (timm's resnetv2, the Identity Mappings paper and Wide ResNet).
fn preactivated(config: ResNetConfig) -> ResNetConfig {
    let variant = config.block_variant().with_preactivation(true);
    config
        .with_variant(Some(variant))
        .with_shortcut(ShortcutOption::B)
}

/// Whether a CIFAR pre-activation net of `depth` layers uses bottlenecks: 9n+2 depths that
/// are not also 6n+2, and from 164 layers on (the Identity Mappings paper's ResNet-164 and
/// ResNet-1001 are bottleneck nets, its ResNet-110 a basic one).
fn preact_bottleneck(depth: usize) -> bool {
    (depth - 2).is_multiple_of(9) && (!(depth - 2).is_multiple_of(6) || depth >= 164)
}

/// `resnetv2_{D}`, `preact_resnet{D}` and `wrn{D}_{k}`.
fn preactivation(rest: &str) -> Option<ResNetConfig> {
    if let Some(digits) = rest.strip_prefix("resnetv2_") {
        return imagenet(number(digits)?).map(preactivated);
    }
    if let Some(digits) = rest.strip_prefix("preact_resnet") {
        let depth = number(digits).filter(|&d| d >= 8)?;
        let config = if preact_bottleneck(depth) {
            let n = (depth - 2) / 9;
            ResNetConfig::new(vec![n, n, n], BlockKind::Bottleneck, Stem::Cifar, 16)
        } else if (depth - 2).is_multiple_of(6) {
            cifar((depth - 2) / 6)
        } else {
            return None;
        };
        return Some(preactivated(config.with_num_classes(10)));
    }
    // Zagoruyko & Komodakis: depth 6n + 4 (the stem, 6n convolutions, three projections),
    // a 16-channel stem, stages of 16k, 32k and 64k channels.
    let (depth, factor) = rest.strip_prefix("wrn")?.split_once('_')?;
    let (depth, k) = (number(depth).filter(|&d| d >= 10)?, number(factor)?);
    if !(depth - 4).is_multiple_of(6) || k > 1 << 10 {
        return None;
    }
    let n = (depth - 4) / 6;
    let config = ResNetConfig::new(vec![n, n, n], BlockKind::Basic, Stem::Cifar, 16 * k)
        .with_stem_width(Some(16))
        .with_num_classes(10);
    Some(preactivated(config))
}

/// `digits` as a positive number, if it is only digits.
fn number(digits: &str) -> Option<usize> {
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) || digits.len() > 6 {
        return None;
    }
    digits.parse().ok().filter(|&n| n > 0)
}

/// Splits ResNet-C/D/S/E's letter off a depth: `50d` → (`50`, Some('d')).
fn stem_letter(digits: &str) -> (&str, Option<char>) {
    match digits.char_indices().last() {
        Some((i, letter @ ('c' | 'd' | 's' | 'e'))) => (&digits[..i], Some(letter)),
        _ => (digits, None),
    }
}

/// `config` with the deep stem and projections its letter names (timm's ResNet-C/D/S/E): `c`
/// and `d` a deep stem of 32, `s` and `e` of 64 (its stem then ends on 128 channels); `d` and
/// `e` also pool before each projection. ImageNet nets only.
fn with_stem_letter(config: ResNetConfig, letter: Option<char>) -> Option<ResNetConfig> {
    let Some(letter) = letter else {
        return Some(config);
    };
    if config.stem != Stem::ImageNet {
        return None;
    }
    let w = if matches!(letter, 'c' | 'd') { 32 } else { 64 };
    let variant = config
        .block_variant()
        .with_avg_down(matches!(letter, 'd' | 'e'));
    let stem_width = (2 * w != config.base_width).then_some(2 * w);
    Some(
        config
            .with_deep_stem(Some(w))
            .with_stem_width(stem_width)
            .with_variant(Some(variant)),
    )
}

/// Blocks per stage of timm's ResNeSt nets (Zhang et al. 2020), by depth.
fn resnest_layers(depth: usize) -> Option<[usize; 4]> {
    match depth {
        14 => Some([1, 1, 1, 1]),
        26 => Some([2, 2, 2, 2]),
        50 => Some([3, 4, 6, 3]),
        101 => Some([3, 4, 23, 3]),
        200 => Some([3, 24, 36, 3]),
        269 => Some([3, 30, 48, 8]),
        _ => None,
    }
}

/// `resnest{D}{d|e}` (radix 2, avd, one group) and `resnest{D}{d|e}_{R}s{C}x{W}d` (radix R,
/// cardinality C, width W per group), timm's ResNeSt names.
fn resnest(rest: &str) -> Option<ResNetConfig> {
    let rest = rest.strip_prefix("resnest")?;
    let (depth, shape) = match rest.split_once('_') {
        Some((depth, shape)) => (depth, Some(shape)),
        None => (rest, None),
    };
    let (digits, letter) = stem_letter(depth);
    let layers = resnest_layers(number(digits)?)?;
    let (radix, groups, width) = match shape {
        None => (2, 1, 64),
        Some(shape) => {
            let (radix, shape) = shape.split_once('s')?;
            let (groups, width) = shape.strip_suffix('d')?.split_once('x')?;
            (number(radix)?, number(groups)?, number(width)?)
        }
    };
    let variant = BlockVariant::new()
        .with_split_attention(radix, true)
        .with_groups(groups)
        .with_width_per_group(width);
    let config = ResNetConfig::new(layers.to_vec(), BlockKind::Bottleneck, Stem::ImageNet, 64)
        .with_variant(Some(variant));
    with_stem_letter(config, Some(letter.filter(|l| matches!(l, 'd' | 'e'))?))
}

/// The successors' names: `resnext{D}_{C}x{d}d` and `wide_resnet{D}_{k}`, after any `se`.
fn successor(rest: &str, se: bool, force_cifar: bool) -> Option<ResNetConfig> {
    let (depth, variant) = if let Some(rest) = rest.strip_prefix("resnext") {
        let (depth, shape) = rest.split_once('_')?;
        let (groups, width) = shape.strip_suffix('d')?.split_once('x')?;
        let variant = BlockVariant::new()
            .with_groups(number(groups)?)
            .with_width_per_group(number(width)?);
        (depth, variant)
    } else {
        let (depth, factor) = rest.strip_prefix("wide_resnet")?.split_once('_')?;
        let variant = BlockVariant::new().with_width_per_group(64 * number(factor)?);
        (depth, variant)
    };
    let (digits, letter) = stem_letter(depth);
    let depth = number(digits)?;
    let variant = variant.with_squeeze_excitation(se);
    match imagenet_preset(depth) {
        Some((BlockKind::Bottleneck, _)) if !force_cifar => {
            with_stem_letter(imagenet(depth)?.with_variant(Some(variant)), letter)
        }
        _ if letter.is_none()
            && !rest.starts_with("wide")
            && depth >= 11
            && (depth - 2) % 9 == 0 =>
        {
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
    if !se
        && !force_cifar
        && ["resnetv2_", "preact_", "wrn"]
            .iter()
            .any(|p| rest.starts_with(p))
    {
        let config = preactivation(rest).ok_or_else(unknown)?;
        return Ok(config.with_residual(!plain));
    }
    if rest.starts_with("resnest") {
        // timm's ResNeSt block takes no SE gate, and ResNeSt has no CIFAR family.
        let config = resnest(rest).filter(|_| !se && !force_cifar);
        return Ok(config.ok_or_else(unknown)?.with_residual(!plain));
    }
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
    let (digits, letter) = stem_letter(digits);
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
    let config = with_stem_letter(config, letter).ok_or_else(unknown)?;
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
pub const SUCCESSORS: [&str; 19] = [
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
    "resnetv2_50",
    "preact_resnet110",
    "preact_resnet164",
    "wrn16_4",
    "wrn28_10",
    "resnest50d",
    "resnest101e",
    "resnet50d",
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
        let v2 = parse("resnetv2_50").unwrap();
        assert!(v2.preactivation() && v2.stem == Stem::ImageNet);
        assert_eq!(v2.shortcut, ShortcutOption::B);
        let p110 = parse("preact_resnet110").unwrap();
        assert_eq!(
            (p110.block, p110.layers.clone(), p110.num_classes),
            (BlockKind::Basic, vec![18, 18, 18], 10)
        );
        let p164 = parse("preact_resnet164").unwrap();
        assert_eq!(
            (p164.block, p164.layers.clone(), p164.depth()),
            (BlockKind::Bottleneck, vec![18, 18, 18], 164)
        );
        let wrn = parse("wrn28_10").unwrap();
        assert_eq!(
            (wrn.layers.clone(), wrn.base_width, wrn.stem_channels()),
            (vec![4, 4, 4], 160, 16)
        );
        assert!(wrn.preactivation() && !parse("plain-wrn28_10").unwrap().residual);
        let st = parse("resnest50d").unwrap();
        let v = st.block_variant();
        assert_eq!(
            (st.layers.clone(), st.deep_stem, st.stem_channels()),
            (vec![3, 4, 6, 3], Some(32), 64)
        );
        assert_eq!((v.radix, v.avd, v.avg_down, v.groups), (2, true, true, 1));
        let e = parse("resnest101e").unwrap();
        assert_eq!((e.deep_stem, e.stem_channels()), (Some(64), 128));
        let d = parse("resnet50d").unwrap();
        assert_eq!((d.deep_stem, d.block_variant().avg_down), (Some(32), true));
        let c = parse("resnet50c").unwrap();
        assert_eq!((c.deep_stem, c.block_variant().avg_down), (Some(32), false));
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
            "plain-preact_resnet110",
            "plain-wrn16_4",
            "resnetv2_101",
            "preact_resnet1001",
            "preact_resnet29",
            "resnest14d",
            "resnest269e",
            "resnest50d_4s2x40d",
            "resnest50d_1s4x24d",
            "resnet18d",
            "resnet34c",
            "resnet152s",
            "resnext50d_32x4d",
            "plain-resnet50d",
            "seresnet50d",
            "wide_resnet50e_2",
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
            "resnetv2_20",
            "preact_resnet21",
            "wrn28",
            "wrn27_10",
            "wrn28_0",
            "seresnetv2_50",
            "cifar-resnetv2_50",
            "preact_resnet",
            "resnest50",
            "resnest50c",
            "resnest34d",
            "resnest50d_2s1x64",
            "seresnest50d",
            "cifar-resnest50d",
            "resnet20d",
            "cifar-resnet50d",
            "resnet50x",
            "resnext29d_8x64d",
            "plain20d",
        ] {
            let err = parse(bad).unwrap_err();
            assert!(
                err.to_string().contains("unknown architecture"),
                "{bad}: {err}"
            );
        }
    }
}
