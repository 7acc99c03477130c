import copy
import re

import pytest
import yaml

from headstart.pipeline.config import ConfigError, check_model_parts, load_config, parse_config, validate_config

from conftest import ROOT


@pytest.fixture(scope="module")
def default():
    return load_config(ROOT / "config.yaml")


def test_default_and_paper_preset_validate():
    load_config(ROOT / "config.yaml")
    base = yaml.safe_load((ROOT / "config.yaml").read_text())
    preset = yaml.safe_load((ROOT / "workflow" / "presets" / "paper.yaml").read_text())
    validate_config({**base, **preset})
    # the last-stage preset is an overlay of config.yaml (Snakemake merges nested keys)
    overlay = yaml.safe_load((ROOT / "workflow" / "presets" / "last_stage.yaml").read_text())
    validate_config({**base, **overlay, "finetune": {**base["finetune"], **overlay["finetune"]}})


def test_typo_in_key_names_the_key(default):
    config = copy.deepcopy(default)
    config["finetune"]["itrations"] = 10
    with pytest.raises(ConfigError, match=r"unknown key 'finetune\.itrations'"):
        validate_config(config)


def test_wrong_type_names_the_key(default):
    config = copy.deepcopy(default)
    config["split"]["test_per_class"] = "many"
    with pytest.raises(ConfigError, match=r"^split\.test_per_class: 'many' is not of type 'integer'$"):
        validate_config(config)


def test_nesterov_without_momentum_is_a_config_error(default):
    config = copy.deepcopy(default)
    config["finetune"]["method_optimizers"]["cotuning"]["momentum"] = 0
    with pytest.raises(ConfigError, match=r"^finetune\.method_optimizers\.cotuning\.momentum: 0 is less than"):
        validate_config(config)
    config["finetune"]["method_optimizers"]["cotuning"]["nesterov"] = False
    validate_config(config)  # plain SGD may have none


def test_unknown_method_and_model(default):
    config = copy.deepcopy(default)
    config["model"] = "vgg99"
    with pytest.raises(ConfigError, match="model: 'vgg99' is not a key of models"):
        validate_config(config)
    config = copy.deepcopy(default)
    config["finetune"]["methods"] = ["random", "wordnet_lin"]
    config["similarity"]["measures"] = ["wordnet"]
    with pytest.raises(ConfigError, match="finetune.methods: 'wordnet_lin' is neither a baseline"):
        validate_config(config)
    config["finetune"]["methods"] = ["random", "wordnet_calibrated", "wordnet_lin_calibrated"]
    with pytest.raises(
        ConfigError, match=r"'wordnet_lin_calibrated' is neither a baseline .* suffix \(_calibrated, _prior\)"
    ):
        validate_config(config)
    config["finetune"]["methods"] = ["random", "wordnet_calibrated", "wordnet_prior"]
    validate_config(config)  # a measure of similarity.measures, calibrated or as a prior


def test_cotuning_needs_a_trainable_last_stage_and_its_validation_activations(default):
    config = copy.deepcopy(default)
    config["finetune"]["methods"] = ["random", "cotuning"]
    with pytest.raises(ConfigError, match="cotuning needs finetune.train: last_stage; with only the head trainable"):
        validate_config(config)
    config["finetune"]["train"] = "last_stage"
    validate_config(config)
    config["extract"]["trunk_activations"] = ["train", "test"]
    with pytest.raises(ConfigError, match=r"last_stage needs the val split's trunk activations \(add val\)"):
        validate_config(config)


def test_shots_must_fit_the_training_pool(default):
    config = copy.deepcopy(default)
    config["finetune"]["shots"] = [900]
    with pytest.raises(ConfigError, match="finetune.shots: 900 images per class do not fit"):
        validate_config(config)


def test_fashion_mnist_classes_are_chosen_by_label_name(default):
    config = copy.deepcopy(default)
    config["dataset"]["classes"] = [config["dataset"]["classes"][6], config["dataset"]["classes"][4]]  # Shirt, Coat
    validate_config(config)  # any subset, any order
    config["dataset"]["classes"][0] = {"label": "Shirts", "synset": "shirt.n.01"}
    with pytest.raises(
        ConfigError,
        match=r"'Shirts' is not a Fashion-MNIST label; .*one of: T-shirt/top, Trouser, "
        r"Pullover, Dress, Coat, Sandal, Shirt, Sneaker, Bag, Ankle boot",
    ):
        validate_config(config)
    config["dataset"]["classes"][0] = {"label": "coat", "synset": "shirt.n.01"}
    with pytest.raises(ConfigError, match="'Coat' is listed twice"):
        validate_config(config)


@pytest.mark.parametrize("k_grid,k", [([1, 1001], [1, "best"]), ([1001], [1]), ([1, 2], [1, 1001])])
def test_k_larger_than_the_source_classes_is_a_config_error(default, k_grid, k):
    config = copy.deepcopy(default)
    config["heads"]["k_grid"], config["finetune"]["k"] = k_grid, k
    with pytest.raises(ConfigError, match="^K = 1001 is larger than the 1000 source classes"):
        validate_config(config)


@pytest.mark.parametrize(
    "synset,message",
    [
        ("n99999999", "n99999999 is not a WordNet 3.0 noun synset (no noun starts at offset 99999999)"),
        ("n03057022", "n03057022 is not a WordNet 3.0 noun synset"),  # one byte into coat's line
        ("coat.v.01", "coat.v.01 is a verb synset; target classes are nouns (name.n.NN)"),
        ("coat.n.09", "coat.n.09: the noun 'coat' has 3 senses in WordNet 3.0"),
        ("koat.n.01", "koat.n.01: WordNet 3.0 has no noun 'koat'"),
        ("coat", "'coat' is neither a wnid (n + 8 digits) nor a synset name such as coat.n.01"),
    ],
)
def test_a_class_that_is_not_a_wordnet_noun_is_a_config_error(default, synset, message):
    config = copy.deepcopy(default)
    config["dataset"]["classes"][4]["synset"] = synset  # Coat
    with pytest.raises(ConfigError, match="^dataset.classes: " + re.escape(message)):
        validate_config(config)


def test_wnids_from_a_classes_file_are_checked(default, tmp_path):
    config = copy.deepcopy(default)
    config["dataset"] = {
        "name": "folder",
        "source": "imagefolder",
        "imagefolder": {"root": str(tmp_path)},
        "classes": str(tmp_path / "wnids.txt"),
    }
    (tmp_path / "wnids.txt").write_text("n03057021\nn04133789\n")
    validate_config(config)
    (tmp_path / "wnids.txt").write_text("n03057021 coat\nn99999999 nothing\n")
    with pytest.raises(ConfigError, match="^dataset.classes: n99999999 is not a WordNet 3.0 noun synset"):
        validate_config(config)


def test_shot_levels_with_nothing_to_train_are_a_config_error(default):
    config = copy.deepcopy(default)
    config["finetune"]["methods"], config["finetune"]["k"] = ["inference"], [1]
    with pytest.raises(ConfigError, match="^finetune.k: below the largest shot level only K = best and the baselines"):
        validate_config(config)
    config["finetune"]["k"] = [1, "best"]
    validate_config(config)
    config["finetune"]["k"], config["finetune"]["k_fixed_at_largest_shot_only"] = [1], False
    validate_config(config)


def test_a_model_takes_its_weights_from_exactly_one_source(default):
    """An override file's `url:` merged into the default entry would keep its package_file, which wins
    silently: a config error that names both, and the fix."""
    config = copy.deepcopy(default)
    weights = config["models"]["efficientnet_lite0"]["weights"]
    weights["url"] = "https://example.org/lite0.pth"
    with pytest.raises(
        ConfigError, match=r"^models.efficientnet_lite0.weights: give exactly one source .*it has package_file and url"
    ):
        validate_config(config)
    weights["package_file"] = None
    validate_config(config)
    weights["url"] = None
    with pytest.raises(ConfigError, match="it has none"):
        validate_config(config)


def test_every_late_failure_is_a_config_error_before_the_first_job(default, tmp_path):
    """Issue 26.5: what used to fail after the work (the export's run, the example class) fails at the check."""
    config = copy.deepcopy(default)
    config["export"] = {"method": "random", "k": 1}  # random runs only with K 0
    with pytest.raises(
        ConfigError, match=r"^export: no run at 500 images per class is method random with K 1 \(its K there: 0\)$"
    ):
        validate_config(config)
    config["export"] = {"method": "inference", "k": 1, "shots": 10}  # K 1 only at the largest level
    with pytest.raises(
        ConfigError, match=r"no run at 10 images per class is method inference with K 1 \(its K there: best\)"
    ):
        validate_config(config)
    config["export"] = {"method": "inference", "k": "best", "shots": 10}
    validate_config(config)
    config["export"] = {"shots": 0, "method": "inference_prior"}  # fitted on images: no untrained head at 0
    with pytest.raises(ConfigError, match=r"^export.shots: 0 images per class needs .*; inference_prior needs images$"):
        validate_config(config)
    for fitting in ({"shots": 0}, {"shots": 0, "method": "sentence", "k": 1}):
        config["export"] = fitting
        validate_config(config)
    assert [str(run) for run in parse_config(config).export_runs(0)] == ["sentence/k1"]
    config["export"] = {"shots": 0, "method": "random"}  # an Xavier draw: chance level, never handed back
    with pytest.raises(ConfigError, match=r"^export.shots: at 0 images per class the only head to export would be "):
        validate_config(config)
    only_random = copy.deepcopy(config)
    only_random["export"] = {"shots": 0}
    only_random["finetune"]["methods"] = ["random", "inference", "probe"]
    with pytest.raises(ConfigError, match=r"random's untrained one \(an Xavier draw, chance level\)"):
        validate_config(only_random)
    config["export"] = {"shots": 0}
    assert [str(run) for run in parse_config(config).export_runs(0)] == [
        "random/k0", "wordnet/k1", "wordnet/kbest", "wordvec/k1", "wordvec/kbest", "sentence/k1", "sentence/kbest"
    ]  # fmt: skip
    config["export"] = {"shots": 3}
    with pytest.raises(ConfigError, match=r"^export.shots: 3 is not a shot level of finetune.shots .* \(nor 0\)$"):
        validate_config(config)
    config = copy.deepcopy(default)
    config["report"]["example_class"] = "Dog"
    with pytest.raises(ConfigError, match=r"^report.example_class: 'Dog' is not a target class; .*n03057021 \(Coat\)"):
        validate_config(config)
    for wanted in ("Coat", "n03057021"):  # by label or by id
        config["report"]["example_class"] = wanted
        validate_config(config)
    config = copy.deepcopy(default)
    config["dataset"]["classes"] = config["dataset"]["classes"][:1]
    with pytest.raises(ConfigError, match=r"^dataset.classes: \[.*\] is too short$"):  # the schema's minItems
        validate_config(config)
    config = copy.deepcopy(default)
    config["dataset"] = {
        "name": "empty",
        "source": "imagefolder",
        "imagefolder": {"root": str(tmp_path)},
        "classes": None,
    }
    config["similarity"]["measures"] = ["inference"]
    config["finetune"]["methods"] = ["random", "inference"]
    config["report"]["example_class"] = None
    with pytest.raises(
        ConfigError, match=rf"^dataset.classes: 0 class \(folders of {tmp_path}\); a classifier needs at least 2$"
    ):
        validate_config(config)


def test_shared_stages_depend_on_the_dataset_not_on_an_experiment(default):
    """The decoded training images are split.max_shots, shared by every experiment: an experiment may not
    fine-tune above it; the similarity heads are written for every K of heads.k_grid."""
    config = copy.deepcopy(default)
    config["split"]["max_shots"] = 100
    with pytest.raises(ConfigError, match=r"finetune.shots: 500 images per class is above split.max_shots \(100\)"):
        validate_config(config)
    config["split"]["max_shots"] = 10_000  # at most the training pool: a smaller pool needs no other max_shots
    validate_config(config)
    config = copy.deepcopy(default)
    config["finetune"]["k"] = [4, "best"]
    with pytest.raises(ConfigError, match=r"^finetune.k: 4 is not in heads.k_grid"):
        validate_config(config)


def test_the_check_passes_where_wordnets_files_are_not_on_the_machine(default, monkeypatch):
    """Without WordNet's files (NLTK fetches them later) a class given by synset name has no id yet: the
    example class is then not checked, rather than the default config refused."""
    import headstart.core.wordnet

    monkeypatch.setattr(headstart.core.wordnet, "wordnet_files_dir", lambda: None)
    validate_config(copy.deepcopy(default))


def test_a_crop_larger_than_the_resize_is_a_config_error(default):
    config = copy.deepcopy(default)
    config["preprocess"] = {"resize": 72, "crop": 100}
    with pytest.raises(ConfigError, match=r"^preprocess.crop: 100 is larger than preprocess.resize \(72\)"):
        validate_config(config)


def test_files_the_config_names_are_checked_before_the_first_job(default, tmp_path):
    config = copy.deepcopy(default)
    config["models"]["efficientnet_lite0"]["weights"] = {"path": str(tmp_path / "nope.pth")}
    with pytest.raises(
        ConfigError, match=rf"^models.efficientnet_lite0.weights.path: {tmp_path}/nope.pth is not a file"
    ):
        parse_config(config)
    (tmp_path / "nope.pth").write_bytes(b"")
    parse_config(config)


def test_an_imagefolder_class_too_small_for_the_split_is_a_config_error(default, tmp_path):
    for folder, n in {"Mug": 5, "Teapot": 3}.items():
        (tmp_path / folder).mkdir()
        for i in range(n):
            (tmp_path / folder / f"{i}.jpg").write_bytes(b"")
    config = copy.deepcopy(default)
    config["dataset"] = {"name": "mine", "source": "imagefolder", "imagefolder": {"root": str(tmp_path)}}
    config["similarity"]["measures"] = ["inference", "softmax"]
    config["finetune"].update(methods=["random", "inference"], shots=[1], k=[1, "best"])
    config["split"] = {"train_per_class": 2, "val_per_class": 1, "test_per_class": 2, "max_shots": None}
    config["report"]["example_class"] = None
    with pytest.raises(ConfigError, match=rf"class 'Teapot' has 3 image files in {tmp_path}/Teapot; the split needs 4"):
        parse_config(config)
    (tmp_path / "Teapot" / "3.png").write_bytes(b"")
    assert parse_config(config).data.name == "mine"


@pytest.mark.parametrize(
    "change, message",
    [
        ({"head": "fc"}, r"models.efficientnet_lite0: head 'fc' is not the last module of the model"),
        ({"trainable": ["blocks.99"]}, r"models.efficientnet_lite0: trainable module 'blocks.99' not found"),
    ],
)
def test_a_head_or_trainable_part_the_network_lacks_is_a_config_error(default, tmp_path, change, message):
    config = copy.deepcopy(default)
    config["models"]["efficientnet_lite0"].update(change)
    with pytest.raises(ConfigError, match=f"^{message}"):
        check_model_parts(parse_config(config).model, tmp_path / "checks.json")
    assert not (tmp_path / "checks.json").exists()  # a failed check is never remembered


def test_a_passed_model_check_runs_once_per_setting(default, tmp_path, monkeypatch):
    cache = tmp_path / "checks.json"
    check_model_parts(parse_config(copy.deepcopy(default)).model, cache)

    def not_again(*args):
        raise AssertionError("built again")

    monkeypatch.setattr("headstart.extract.models.build_architecture", not_again)
    check_model_parts(parse_config(copy.deepcopy(default)).model, cache)  # remembered: not built again
    config = copy.deepcopy(default)
    config["models"]["efficientnet_lite0"]["trainable"] = ["conv_head"]
    with pytest.raises(AssertionError, match="built again"):  # another setting: checked again
        check_model_parts(parse_config(config).model, cache)
