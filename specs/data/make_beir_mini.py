"""Write specs/data/beir-mini/: a tiny BEIR-format set (corpus.jsonl, queries.jsonl,
qrels/test.tsv) for specs/beir-mini.yaml. Ten topics, four passages each, one query per topic;
grades: 2 the passage that answers it, 1 a passage on its topic, 0 a judged near miss.
Run: python specs/data/make_beir_mini.py (the files are shipped; this says how they were made)."""

import json
from pathlib import Path

TOPICS = [
    ("photosynthesis", "How do plants turn sunlight into energy?",
     ["Photosynthesis", "Plants capture light with chlorophyll and use it to turn water and carbon dioxide into "
                        "glucose and oxygen."],
     ["Leaves", "A leaf is the main organ of a plant where most light is absorbed; its cells hold many chloroplasts."],
     ["Solar panels", "Photovoltaic cells convert sunlight directly into electricity using semiconductor junctions."],
     ["Composting", "Garden waste breaks down into compost when microbes digest it in warm, moist heaps."]),
    ("volcano", "What causes a volcano to erupt?",
     ["Volcanic eruptions", "Magma rises because it is lighter than the surrounding rock; dissolved gases expand and "
                            "drive the eruption."],
     ["Plate tectonics", "Most volcanoes sit where tectonic plates pull apart or one plate dives beneath another."],
     ["Geysers", "A geyser spouts hot water when groundwater heated by rock boils in a narrow channel."],
     ["Mountains", "Mountain ranges form over millions of years as colliding plates fold and lift the crust."]),
    ("bread", "Why does bread dough rise?",
     ["Yeast fermentation", "Yeast eats the sugars in dough and releases carbon dioxide, whose bubbles make the bread "
                            "rise."],
     ["Gluten", "Kneading develops gluten, an elastic network that traps gas in the dough."],
     ["Baking soda", "Baking soda releases gas when it meets an acid, which lifts cakes and quick breads."],
     ["Wheat", "Wheat is a cereal grass grown worldwide; its grain is milled into flour."]),
    ("vaccines", "How do vaccines protect against disease?",
     ["Vaccination", "A vaccine trains the immune system to recognise a pathogen, so memory cells respond fast to a "
                     "real infection."],
     ["Antibodies", "Antibodies are proteins made by B cells that bind to specific molecules on invaders."],
     ["Antibiotics", "Antibiotics kill bacteria or stop them growing; they do not work against viruses."],
     ["Hand washing", "Washing hands with soap removes germs and lowers the spread of infections."]),
    ("tides", "What makes ocean tides rise and fall?",
     ["Tides", "The Moon's gravity pulls the oceans into bulges; as the Earth turns, coasts pass through high and low "
               "tide."],
     ["Spring tides", "When the Sun and Moon line up, their pulls add and the tidal range is largest."],
     ["Waves", "Wind blowing over the sea surface builds waves whose height depends on its speed and reach."],
     ["Ocean currents", "Currents such as the Gulf Stream carry warm water across whole ocean basins."]),
    ("rainbow", "Why do rainbows appear after rain?",
     ["Rainbows", "Sunlight is refracted, reflected and dispersed inside raindrops, splitting it into a circle of "
                  "colours."],
     ["Prisms", "A glass prism bends each wavelength by a different angle, spreading white light into a spectrum."],
     ["Clouds", "Clouds form when moist air cools and its water vapour condenses on tiny particles."],
     ["Lightning", "Lightning is a discharge between charged regions of a storm cloud or the ground."]),
    ("coffee", "How does caffeine keep people awake?",
     ["Caffeine", "Caffeine blocks adenosine receptors in the brain, so the signal that builds sleepiness is muted."],
     ["Sleep pressure", "Adenosine accumulates during waking hours and is one reason we feel tired in the evening."],
     ["Tea", "Tea leaves are picked, withered and dried; green and black tea differ in how much they oxidise."],
     ["Coffee roasting", "Roasting coffee beans browns them and develops hundreds of aroma compounds."]),
    ("bridges", "How do suspension bridges carry their load?",
     ["Suspension bridges", "The deck hangs from vertical cables attached to main cables, which carry the load in "
                            "tension to the towers and anchorages."],
     ["Steel cables", "Bridge cables are spun from thousands of parallel steel wires for strength and redundancy."],
     ["Arch bridges", "An arch carries its load in compression, pushing outwards on its abutments."],
     ["Tunnels", "Tunnel boring machines cut through rock while lining the bore with concrete segments."]),
    ("migration", "Why do birds migrate south in winter?",
     ["Bird migration", "Many birds fly to warmer regions in autumn because insects and other food grow scarce in the "
                        "cold."],
     ["Navigation", "Migrating birds steer by the Sun, the stars and the Earth's magnetic field."],
     ["Hibernation", "Some mammals survive winter by hibernating, lowering their body temperature and heart rate."],
     ["Feathers", "Feathers insulate birds and shape their wings for flight."]),
    ("batteries", "How does a lithium-ion battery store energy?",
     ["Lithium-ion batteries", "Charging moves lithium ions from the cathode into the graphite anode; discharging lets "
                               "them flow back, driving a current."],
     ["Electrolytes", "The electrolyte lets ions pass between the electrodes while blocking electrons."],
     ["Capacitors", "A capacitor stores energy in an electric field between two plates and releases it very quickly."],
     ["Power plants", "Coal and gas plants burn fuel to boil water and spin turbines that drive generators."]),
]


def main() -> None:
    out = Path(__file__).resolve().parent / "beir-mini"
    (out / "qrels").mkdir(parents=True, exist_ok=True)
    corpus, queries, qrels = [], [], ["query-id\tcorpus-id\tscore"]
    for t, (topic, question, best, related, near, _other) in enumerate(TOPICS, start=1):
        docs = [best, related, near, _other]
        for d, (title, text) in enumerate(docs, start=1):
            corpus.append({"_id": f"{topic}-{d}", "title": title, "text": text})
        queries.append({"_id": f"q{t}", "text": question})
        qrels += [f"q{t}\t{topic}-1\t2", f"q{t}\t{topic}-2\t1", f"q{t}\t{topic}-3\t0"]
    # an extra query with two fully relevant answers and a query outside the test split
    queries.append({"_id": "q11", "text": "Where does the energy in food and fuel come from?"})
    qrels += ["q11\tphotosynthesis-1\t2", "q11\tbatteries-1\t1", "q11\tbatteries-4\t1"]
    queries.append({"_id": "q12", "text": "An unjudged query: BEIR keeps only the judged ones."})

    def dump(rows):
        return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)

    (out / "corpus.jsonl").write_text(dump(corpus), encoding="utf-8")
    (out / "queries.jsonl").write_text(dump(queries), encoding="utf-8")
    (out / "qrels" / "test.tsv").write_text("\n".join(qrels) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
