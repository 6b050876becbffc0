/* synth_vision.h - `bitnet synth` of image classifiers: random ternary models of the shapes of
 * ResNet-18/50, ViT-S/16, ViT-B/16 and EfficientNet-B0 (docs/VISION.md), for benchmarks
 * without a checkpoint. */
#ifndef BITNET_APP_SYNTH_VISION_H
#define BITNET_APP_SYNTH_VISION_H

#include <stdint.h>

/* 1 when name is a vision shape ("resnet18", "resnet50", "vit-s16", "vit-b16",
 * "efficientnet-b0"). */
int synth_vision_known(const char *name);
/* Writes the shape's random model to out (seeded) and prints what it wrote (JSON with json):
 * an exit code. */
int synth_vision(const char *name, const char *out, uint64_t seed, int json);

#endif
