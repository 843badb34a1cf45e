"""Numbers the paper publishes (PAPER.md), as data for tests and reports."""

# Table 1: multiply-adds (FLOPs in the paper), ImageNet 224x224, v1.
TABLE1_MACS = {18: 1.8e9, 34: 3.6e9, 50: 3.8e9, 101: 7.6e9, 152: 11.3e9}
# Parameters (weights + BN affine + fc bias) of the option-B ImageNet nets.
IMAGENET_PARAMS = {18: 11_689_512, 34: 21_797_672, 50: 25_557_032, 101: 44_549_160, 152: 60_192_808}
# CIFAR-10 nets (option A): exact counts, and as the paper prints them (Table 6).
CIFAR_PARAMS = {
    20: 269_722,
    32: 464_154,
    44: 658_586,
    56: 853_018,
    110: 1_727_962,
    1202: 19_421_274,
}
CIFAR_PARAMS_PRINTED = {
    20: "0.27M",
    32: "0.46M",
    44: "0.66M",
    56: "0.85M",
    110: "1.7M",
    1202: "19.4M",
}
# Table 6: CIFAR-10 test error (%) of the ResNets (110: best of 5; mean 6.61 +- 0.16).
TABLE6_TEST_ERR = {20: 8.75, 32: 7.51, 44: 7.17, 56: 6.97, 110: 6.43, 1202: 7.93}
# Not the paper: the best-known public reproduction, akamaster/pytorch_resnet_cifar10 (its
# README's "Test err(this impl.)"). Its trainer.py runs 200 epochs (78k iterations of 128;
# lr /10 at epochs 100 and 150), per-channel mean/std normalisation, all 50k training images,
# tests on the test set after every epoch and keeps the best (best_prec1): a best-epoch
# number chosen on the test set, not a final one.
AKAMASTER_TEST_ERR = {20: 8.27, 32: 7.37, 44: 6.90, 56: 6.61, 110: 6.32}
# Table 2: ImageNet val top-1 error (%), 10-crop.
TABLE2_TOP1 = {"plain18": 27.94, "resnet18": 27.88, "plain34": 28.54, "resnet34": 25.03}
