"""Category names of the datasets the official checkpoints were trained on.

Each list is in the model's contiguous class order. `dataset_ids` maps a contiguous class back to
the dataset's category id (what YouTube-VIS / OVIS / VIPSeg result files must carry).
"""
from __future__ import annotations

from dataclasses import dataclass

OVIS = (
    "Person Bird Cat Dog Horse Sheep Cow Elephant Bear Zebra Giraffe Poultry Giant_panda Lizard "
    "Parrot Monkey Rabbit Tiger Fish Turtle Bicycle Motorcycle Airplane Boat Vehical"
).split()

YTVIS_2019 = (
    "person giant_panda lizard parrot skateboard sedan ape dog snake monkey hand rabbit duck cat cow "
    "fish train horse turtle bear motorbike giraffe leopard fox deer owl surfboard airplane truck "
    "zebra tiger elephant snowboard boat shark mouse frog eagle earless_seal tennis_racket"
).split()

YTVIS_2021 = (
    "airplane bear bird boat car cat cow deer dog duck earless_seal elephant fish flying_disc fox "
    "frog giant_panda giraffe horse leopard lizard monkey motorbike mouse parrot person rabbit shark "
    "skateboard snake snowboard squirrel surfboard tennis_racket tiger train truck turtle whale zebra"
).split()

# VIPSeg: dataset ids 0..123 in id order; `VIPSEG_THING_IDS` are the 58 thing categories.
VIPSEG_BY_ID = (
    "wall ceiling door stair ladder escalator Playground_slide handrail_or_fence window rail goal "
    "pillar pole floor ground grass sand athletic_field road path crosswalk building house bridge "
    "tower windmill well_or_well_lid other_construction sky mountain stone wood ice snowfield "
    "grandstand sea river lake waterfall water billboard_or_Bulletin_Board sculpture pipeline flag "
    "parasol_or_umbrella cushion_or_carpet tent roadblock car bus truck bicycle motorcycle "
    "wheeled_machine ship_or_boat raft airplane tyre traffic_light lamp person cat dog horse cattle "
    "other_animal tree flower other_plant toy ball_net backboard skateboard bat ball "
    "cupboard_or_showcase_or_storage_rack box traveling_case_or_trolley_case basket bag_or_package "
    "trash_can cage plate tub_or_bowl_or_pot bottle_or_cup barrel fishbowl bed pillow table_or_desk "
    "chair_or_seat bench sofa shelf bathtub gun commode roaster other_machine refrigerator "
    "washing_machine Microwave_oven fan curtain textiles clothes painting_or_poster mirror "
    "flower_pot_or_vase clock book tool blackboard tissue screen_or_television computer printer "
    "Mobile_phone keyboard other_electronic_product fruit food instrument train"
).split()
VIPSEG_THING_IDS = frozenset(
    (2, 4, 8, 10, 41, 43, 44, 46, 47, 48, 49, 50, 51, 52, 54, 55, 56, 60, 61, 62, 63, 64, 65, 72, 74,
     76, 77, 78, 79, 82, 83, 84, 85, 86, 87, 88, 89, 90, 91, 92, 95, 96, 97, 99, 100, 101, 102, 106,
     107, 108, 109, 114, 115, 116, 117, 118, 122, 123)
)


@dataclass(frozen=True)
class ClassSet:
    """Classes of a model in contiguous order; things come first for panoptic models."""

    names: tuple[str, ...]
    dataset_ids: tuple[int, ...]
    num_things: int  # classes [0, num_things) are things; the rest are stuff (VPS only)

    @property
    def num_classes(self) -> int:
        return len(self.names)


def _vis(names: list[str]) -> ClassSet:
    # YouTube-VIS / OVIS category ids are 1-based in list order.
    return ClassSet(tuple(names), tuple(range(1, len(names) + 1)), len(names))


def _vipseg() -> ClassSet:
    # Contiguous order is things sorted by id, then stuff sorted by id (the official mapper's rank).
    things = [i for i in range(len(VIPSEG_BY_ID)) if i in VIPSEG_THING_IDS]
    stuff = [i for i in range(len(VIPSEG_BY_ID)) if i not in VIPSEG_THING_IDS]
    order = things + stuff
    return ClassSet(tuple(VIPSEG_BY_ID[i] for i in order), tuple(order), len(things))


# The synthetic dataset of `dvis data synth` (dvis_cli/data/synth.py), which the embedded model learns.
SYNTH = ("disc", "square", "triangle", "star", "ring")

CLASS_SETS: dict[str, ClassSet] = {
    "ovis": _vis(OVIS),
    "ytvis19": _vis(YTVIS_2019),
    "ytvis21": _vis(YTVIS_2021),
    "vipseg": _vipseg(),
    "synth": _vis(list(SYNTH)),
}
