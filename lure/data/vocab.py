"""Genre names and genre-flavoured title words of the simulated world.

Titles must read like real movie titles so that an LLM recommender can reason about them: a title built from
"Haunted", "Asylum" and "Exorcist" tells the model the item is a horror film. Each genre has three word lists:
adjectives (first word), nouns (things, places, events) and roles (people). The first 12 genres are the common
ones (``WorldSpec.n_genres`` defaults to 12); the order is also the order of genre frequency in the catalogue.
"""

from __future__ import annotations

from typing import NamedTuple


class GenreWords(NamedTuple):
    adjectives: tuple[str, ...]
    nouns: tuple[str, ...]
    roles: tuple[str, ...]


def _w(adjectives: str, nouns: str, roles: str) -> GenreWords:
    split = lambda s: tuple(w.strip() for w in s.split(","))  # noqa: E731
    return GenreWords(split(adjectives), split(nouns), split(roles))


GENRE_WORDS: dict[str, GenreWords] = {
    "Drama": _w(
        "Quiet, Broken, Distant, Silent, Fragile, Bitter, Tender, Restless",
        "River, Winter, Harvest, Letters, Promise, Kitchen, Orchard, Station",
        "Widow, Daughter, Brothers, Stranger, Teacher, Father",
    ),
    "Comedy": _w(
        "Crazy, Lucky, Awkward, Wacky, Clumsy, Cheeky, Goofy, Silly",
        "Wedding, Vacation, Roommates, Road Trip, Office Party, Barbecue, Neighbors, Karaoke",
        "Bachelor, Uncle, Klutz, Prankster, Babysitter, Intern",
    ),
    "Action": _w(
        "Lethal, Rapid, Explosive, Relentless, Iron, Bulletproof, Maximum, Deadly",
        "Strike, Fury, Velocity, Impact, Takedown, Firefight, Showdown, Pursuit",
        "Commando, Mercenary, Bodyguard, Enforcer, Sniper, Getaway Driver",
    ),
    "Thriller": _w(
        "Hidden, Twisted, Fatal, Paranoid, Sleepless, Cold, Trapped, Vanishing",
        "Signal, Deadline, Ransom, Conspiracy, Hostage, Countdown, Blackout, Witness",
        "Informant, Stalker, Agent, Negotiator, Hacker, Fugitive",
    ),
    "Romance": _w(
        "Sweet, Endless, Summer, Secret, Starry, Golden, Forever, Moonlit",
        "Kiss, Heart, Valentine, Serenade, Rendezvous, Honeymoon, Sunset, Love Letter",
        "Lovers, Bride, Sweetheart, Suitor, Fiancee, Soulmate",
    ),
    "Crime": _w(
        "Dirty, Crooked, Gangland, Bloody, Corrupt, Underground, Stolen, Midnight",
        "Heist, Racket, Syndicate, Precinct, Getaway, Vault, Alibi, Harbor",
        "Detective, Gangster, Mobster, Godfather, Cop, Thief",
    ),
    "Horror": _w(
        "Haunted, Cursed, Wicked, Undead, Ghastly, Sinister, Possessed, Bleeding",
        "Asylum, Crypt, Cellar, Graveyard, Ritual, Nightmare, Manor, Swamp",
        "Zombie, Witch, Demon, Vampire, Exorcist, Ghoul",
    ),
    "Sci-Fi": _w(
        "Quantum, Galactic, Cybernetic, Orbital, Synthetic, Stellar, Atomic, Neon",
        "Nebula, Colony, Starship, Mainframe, Wormhole, Moonbase, Hologram, Singularity",
        "Cyborg, Astronaut, Robot, Clone, Alien, Navigator",
    ),
    "Adventure": _w(
        "Lost, Wild, Forgotten, Savage, Uncharted, Sunken, Emerald, Faraway",
        "Island, Jungle, Expedition, Treasure, Temple, Voyage, Canyon, Compass",
        "Explorer, Pirate, Castaway, Captain, Nomad, Ranger",
    ),
    "Fantasy": _w(
        "Enchanted, Mystic, Elven, Shadow, Crystal, Ancient, Sacred, Eternal",
        "Kingdom, Sword, Realm, Prophecy, Tower, Amulet, Citadel, Throne",
        "Wizard, Sorceress, Dragon, Knight, Princess, Oracle",
    ),
    "Mystery": _w(
        "Curious, Missing, Locked, Foggy, Unsolved, Peculiar, Veiled, Last",
        "Clue, Riddle, Manuscript, Lighthouse, Inheritance, Cipher, Attic, Portrait",
        "Sleuth, Inspector, Heiress, Butler, Professor, Investigator",
    ),
    "Animation": _w(
        "Tiny, Bouncy, Magical, Colorful, Fluffy, Brave, Little, Happy",
        "Forest, Toybox, Cloud, Rainbow, Bubble, Candyland, Treehouse, Carnival",
        "Penguin, Bunny, Dragonfly, Puppy, Raccoon, Unicorn",
    ),
    "Family": _w(
        "Holiday, Sunny, Backyard, Hometown, Grand, Cozy, Rainy, Snowy",
        "Christmas, Picnic, Campout, Farm, Reunion, Sleepover, Birthday, Pony",
        "Grandpa, Twins, Stepmom, Kids, Nanny, Cousins",
    ),
    "Documentary": _w(
        "Untold, Inside, Real, Modern, Living, Human, Changing, Deep",
        "Ocean, Planet, Economy, Climate, Frontier, Archive, Migration, Factory",
        "Whistleblower, Scientist, Farmers, Activist, Filmmaker, Witnesses",
    ),
    "War": _w(
        "Burning, Frozen, Steel, Fallen, Scorched, Valiant, Shattered, Eastern",
        "Front, Trench, Battalion, Beachhead, Siege, Bunker, Armistice, Offensive",
        "Soldier, General, Medic, Pilot, Sergeant, Deserter",
    ),
    "Western": _w(
        "Dusty, Lone, Rusty, Desert, Outlaw, High Noon, Red Rock, Dry",
        "Prairie, Saloon, Ranch, Gulch, Mesa, Stagecoach, Rodeo, Gold Rush",
        "Sheriff, Gunslinger, Cowboy, Bandit, Marshal, Drifter",
    ),
    "Musical": _w(
        "Singing, Dancing, Jazzy, Rhythmic, Broadway, Melodic, Swinging, Velvet",
        "Melody, Ballroom, Cabaret, Chorus, Rhapsody, Encore, Jukebox, Stage",
        "Dancer, Diva, Songbird, Crooner, Pianist, Showgirl",
    ),
    "Film-Noir": _w(
        "Smoky, Rain-Soaked, Shadowy, Deceitful, Lonely, Double, Crimson, Nocturnal",
        "Alley, Boulevard, Nightclub, Cigarette, Raincoat, Skyline, Motel, Diner",
        "Femme Fatale, Private Eye, Gambler, Hitman, Widower, Bartender",
    ),
    "Biography": _w(
        "Remarkable, Extraordinary, Humble, Unlikely, Brilliant, Defiant, Early, Private",
        "Life, Years, Legacy, Journey, Diary, Memoir, Genius, Rise",
        "Inventor, Painter, Pioneer, Champion, Poet, Composer",
    ),
    "History": _w(
        "Imperial, Royal, Medieval, Victorian, Roman, Revolutionary, Byzantine, Colonial",
        "Empire, Dynasty, Crown, Revolution, Republic, Chronicle, Coronation, Conquest",
        "Emperor, Queen, Senator, Monk, Regent, Chancellor",
    ),
    "Sports": _w(
        "Fast, Underdog, Winning, Varsity, Olympic, Final, Rookie, Perfect",
        "Season, Match, Goal, Playoff, Stadium, Marathon, Finish Line, Comeback",
        "Coach, Quarterback, Boxer, Striker, Pitcher, Goalkeeper",
    ),
    "Superhero": _w(
        "Mighty, Invincible, Masked, Amazing, Cosmic, Ultimate, Thunder, Super",
        "Justice, Legion, Vengeance, Origins, Multiverse, Shield, Metropolis, Uprising",
        "Avenger, Vigilante, Sentinel, Titan, Crusader, Defender",
    ),
    "Martial Arts": _w(
        "Shaolin, Jade, Flying, Drunken, Crouching, Bamboo, Tiger, Lotus",
        "Fist, Dojo, Monastery, Tournament, Blade, Palm, Kick, Scroll",
        "Master, Disciple, Samurai, Ninja, Sensei, Warrior",
    ),
    "Teen": _w(
        "Totally, Popular, Senior, Rebel, Teenage, Electric, Suburban, First",
        "Prom, Homecoming, Yearbook, Detention, Locker, Spring Break, Mixtape, Crush",
        "Freshman, Cheerleader, Nerd, Skater, Valedictorian, Outsider",
    ),
}

GENRES: tuple[str, ...] = tuple(GENRE_WORDS)

#: Formulaic title frames of the world's language prior (docs/world.md, "Language prior"): high-prior items get
#: "{frame} (year)" with the slot filled by a noun or role of one of the item's own genres. One pool for every
#: genre, so the frame itself says nothing about the genre (the filler word does, as in every other title). No
#: frame word is a word of any genre list (a test checks it), so a frame is never mistaken for a genre-word title;
#: that is why "The Last ..." is not here (Mystery's adjectives include "Last").
FORMULAIC_FRAMES: tuple[str, ...] = (
    "Return of the {}",
    "{} Rising",
    "Legend of the {}",
    "Call of the {}",
    "Revenge of the {}",
    "Dawn of the {}",
    "The {} Returns",
    "Beyond the {}",
    "Escape from the {}",
    "Quest for the {}",
    "The {} Awakens",
    "Tales of the {}",
)


def roman(n: int) -> str:
    """Roman numeral of ``n`` >= 1: the sequel marker that makes a repeated title unique ("... II (1994)")."""
    out = []
    for value, numeral in (
        (1000, "M"), (900, "CM"), (500, "D"), (400, "CD"), (100, "C"), (90, "XC"),
        (50, "L"), (40, "XL"), (10, "X"), (9, "IX"), (5, "V"), (4, "IV"), (1, "I"),
    ):  # fmt: skip
        count, n = divmod(n, value)
        out.append(numeral * count)
    return "".join(out)
