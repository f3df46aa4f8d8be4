"""Networks: the E²GAN generator, the pix2pix ResNet baseline and the conditional PatchGAN.

Modules: factory (networks by name, pix2pix init), generator, pix2pix, discriminator, layers,
conditioning (concept encoders), text_encoder (CLIP), lora (LoRA surgery), registry (a run's
networks saved and loaded).
"""
