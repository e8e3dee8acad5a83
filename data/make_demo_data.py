#!/usr/bin/env python3
"""Write TuneBoard's demo datasets and data/dataset_info.json.

Every row comes from the word lists and templates in this file, written for TuneBoard (Apache-2.0).
Output is deterministic: same Python, same bytes. Regenerate with

    python data/make_demo_data.py            # writes next to this script
    python data/make_demo_data.py --out DIR  # writes into DIR (the test compares DIR with data/)

Each dataset draws from its own seeded random.Random, so editing one generator does not reshuffle the others.
Test splits (sentiment_en_test, nli_zh_test, arith_test) are built first and every training set excludes them,
so accuracy measured on a test split is never inflated by a copy in any demo dataset. arith_prompts (GRPO: prompts
with a reference answer) draws last, so adding it changed none of the other files.
"""
from __future__ import annotations

import argparse
import json
import random
import zlib
from pathlib import Path

SEED = 20240611
HERE = Path(__file__).resolve().parent


def rng_for(name: str) -> random.Random:
    return random.Random(zlib.crc32(f"{SEED}:{name}".encode("utf-8")))


def alpaca(instruction: str, output: str, input: str = "") -> dict:
    return {"instruction": instruction, "input": input, "output": output}


def cap(s: str) -> str:
    return s[:1].upper() + s[1:]


def sg(role: str, value: str) -> dict:
    return {"from": role, "value": value}


# --------------------------------------------------------------------------------------------------- shared facts
# (country, capital, continent, 国家, 首都, 大洲); countries whose continent or capital is disputed are left out.
COUNTRIES = [
    ("France", "Paris", "Europe", "法国", "巴黎", "欧洲"),
    ("Germany", "Berlin", "Europe", "德国", "柏林", "欧洲"),
    ("Italy", "Rome", "Europe", "意大利", "罗马", "欧洲"),
    ("Spain", "Madrid", "Europe", "西班牙", "马德里", "欧洲"),
    ("Portugal", "Lisbon", "Europe", "葡萄牙", "里斯本", "欧洲"),
    ("Belgium", "Brussels", "Europe", "比利时", "布鲁塞尔", "欧洲"),
    ("Austria", "Vienna", "Europe", "奥地利", "维也纳", "欧洲"),
    ("Switzerland", "Bern", "Europe", "瑞士", "伯尔尼", "欧洲"),
    ("Poland", "Warsaw", "Europe", "波兰", "华沙", "欧洲"),
    ("Greece", "Athens", "Europe", "希腊", "雅典", "欧洲"),
    ("Sweden", "Stockholm", "Europe", "瑞典", "斯德哥尔摩", "欧洲"),
    ("Norway", "Oslo", "Europe", "挪威", "奥斯陆", "欧洲"),
    ("Finland", "Helsinki", "Europe", "芬兰", "赫尔辛基", "欧洲"),
    ("Denmark", "Copenhagen", "Europe", "丹麦", "哥本哈根", "欧洲"),
    ("Ireland", "Dublin", "Europe", "爱尔兰", "都柏林", "欧洲"),
    ("Hungary", "Budapest", "Europe", "匈牙利", "布达佩斯", "欧洲"),
    ("the Czech Republic", "Prague", "Europe", "捷克", "布拉格", "欧洲"),
    ("the United Kingdom", "London", "Europe", "英国", "伦敦", "欧洲"),
    ("Japan", "Tokyo", "Asia", "日本", "东京", "亚洲"),
    ("China", "Beijing", "Asia", "中国", "北京", "亚洲"),
    ("South Korea", "Seoul", "Asia", "韩国", "首尔", "亚洲"),
    ("India", "New Delhi", "Asia", "印度", "新德里", "亚洲"),
    ("Thailand", "Bangkok", "Asia", "泰国", "曼谷", "亚洲"),
    ("Vietnam", "Hanoi", "Asia", "越南", "河内", "亚洲"),
    ("the Philippines", "Manila", "Asia", "菲律宾", "马尼拉", "亚洲"),
    ("Malaysia", "Kuala Lumpur", "Asia", "马来西亚", "吉隆坡", "亚洲"),
    ("Mongolia", "Ulaanbaatar", "Asia", "蒙古", "乌兰巴托", "亚洲"),
    ("Iran", "Tehran", "Asia", "伊朗", "德黑兰", "亚洲"),
    ("Saudi Arabia", "Riyadh", "Asia", "沙特阿拉伯", "利雅得", "亚洲"),
    ("Egypt", "Cairo", "Africa", "埃及", "开罗", "非洲"),
    ("Kenya", "Nairobi", "Africa", "肯尼亚", "内罗毕", "非洲"),
    ("Nigeria", "Abuja", "Africa", "尼日利亚", "阿布贾", "非洲"),
    ("Morocco", "Rabat", "Africa", "摩洛哥", "拉巴特", "非洲"),
    ("Ethiopia", "Addis Ababa", "Africa", "埃塞俄比亚", "亚的斯亚贝巴", "非洲"),
    ("Ghana", "Accra", "Africa", "加纳", "阿克拉", "非洲"),
    ("Canada", "Ottawa", "North America", "加拿大", "渥太华", "北美洲"),
    ("Mexico", "Mexico City", "North America", "墨西哥", "墨西哥城", "北美洲"),
    ("the United States", "Washington, D.C.", "North America", "美国", "华盛顿", "北美洲"),
    ("Cuba", "Havana", "North America", "古巴", "哈瓦那", "北美洲"),
    ("Brazil", "Brasília", "South America", "巴西", "巴西利亚", "南美洲"),
    ("Argentina", "Buenos Aires", "South America", "阿根廷", "布宜诺斯艾利斯", "南美洲"),
    ("Peru", "Lima", "South America", "秘鲁", "利马", "南美洲"),
    ("Chile", "Santiago", "South America", "智利", "圣地亚哥", "南美洲"),
    ("Colombia", "Bogotá", "South America", "哥伦比亚", "波哥大", "南美洲"),
    ("Australia", "Canberra", "Oceania", "澳大利亚", "堪培拉", "大洋洲"),
    ("New Zealand", "Wellington", "Oceania", "新西兰", "惠灵顿", "大洋洲"),
]

# (concept, explanation, example)
CONCEPTS_EN = [
    ("photosynthesis",
     "Photosynthesis is the process green plants, algae and some bacteria use to turn sunlight, water and carbon "
     "dioxide into sugar and oxygen. The sugar stores energy the plant uses to grow, and the oxygen is released "
     "into the air we breathe.",
     "a houseplant on a sunny windowsill makes sugar in its leaves all day, which is why plants kept in a dark "
     "corner grow slowly and turn pale."),
    ("gravity",
     "Gravity is the force by which objects with mass pull on one another. On Earth it draws everything toward "
     "the ground and gives objects their weight; in space it keeps the Moon circling Earth and Earth circling "
     "the Sun.",
     "when you let go of a ball it falls to the floor, and the heavier planet Jupiter holds dozens of moons in "
     "orbit around it."),
    ("recursion",
     "Recursion is a programming technique in which a function solves a problem by calling itself on a smaller "
     "version of the same problem. Every recursive function needs a base case that stops the calls, otherwise it "
     "would never finish.",
     "the factorial of 5 can be computed as 5 times the factorial of 4, which is 4 times the factorial of 3, and "
     "so on until the factorial of 1, which is simply 1."),
    ("inflation",
     "Inflation is the general rise in prices over time, which means each unit of money buys a little less than "
     "before. Mild inflation is normal in a growing economy, but very high inflation makes saving and planning "
     "difficult.",
     "if a loaf of bread costs 2 dollars this year and 2 dollars 10 cents next year, its price has risen by 5 "
     "percent."),
    ("the water cycle",
     "The water cycle is the continuous movement of water on, above and below the surface of the Earth. Water "
     "evaporates from seas and lakes, condenses into clouds, falls as rain or snow, and flows back to the sea "
     "through rivers and groundwater.",
     "a puddle that dries up on a warm afternoon turns into water vapour, which may fall as rain in another town "
     "a few days later."),
    ("an ecosystem",
     "An ecosystem is a community of living things together with the non-living surroundings they share, such as "
     "water, soil and climate. Plants, animals and microbes depend on one another for food, shelter and the "
     "recycling of nutrients.",
     "in a pond, algae feed insects, insects feed fish, herons eat the fish, and bacteria break down whatever "
     "dies so the algae can grow again."),
    ("a black hole",
     "A black hole is a region of space where gravity is so strong that nothing, not even light, can escape once "
     "it comes too close. Most black holes form when a very massive star collapses at the end of its life.",
     "astronomers find black holes by watching stars that orbit an invisible object very fast, or gas that glows "
     "brightly as it spirals inward."),
    ("democracy",
     "Democracy is a system of government in which the people hold power, usually by electing representatives "
     "in free and regular elections. It depends on rights such as free speech, a free press and equal treatment "
     "under the law.",
     "when the citizens of a town vote to choose their mayor and can vote her out at the next election, they are "
     "practising democracy."),
    ("machine learning",
     "Machine learning is a branch of computer science in which programs learn patterns from examples instead of "
     "following rules written by hand. After training on data, a model can make predictions about new cases it "
     "has never seen.",
     "a spam filter learns from thousands of labelled emails which words and senders tend to appear in unwanted "
     "messages, and then sorts new mail by itself."),
    ("a vaccine",
     "A vaccine is a preparation that teaches the immune system to recognise a germ without causing the disease. "
     "If the real germ arrives later, the body can respond quickly and prevent serious illness.",
     "a child who receives the measles vaccine builds defences against the virus, so a later contact with "
     "measles usually causes no illness at all."),
    ("supply and demand",
     "Supply and demand describe how prices are set in a market. When many people want something that is scarce, "
     "its price tends to rise; when there is plenty of it and few buyers, its price tends to fall.",
     "strawberries are cheap in early summer when farms pick huge amounts, and expensive in winter when few are "
     "available."),
    ("compound interest",
     "Compound interest is interest calculated on both the original amount and the interest already earned. "
     "Because the interest itself earns interest, savings grow faster the longer they are left untouched.",
     "100 dollars saved at 10 percent a year becomes 110 dollars after one year and 121 dollars after two, "
     "because the second year's interest is also paid on the first year's 10 dollars."),
    ("an algorithm",
     "An algorithm is a precise, step-by-step set of instructions for solving a problem or completing a task. "
     "Computers run algorithms, but a cooking recipe or directions to a friend's house are algorithms too.",
     "to find the largest number in a list, look at each number in turn and remember the biggest one you have "
     "seen so far."),
    ("the greenhouse effect",
     "The greenhouse effect is the warming of a planet's surface by gases in its atmosphere, such as carbon "
     "dioxide and water vapour, that trap heat. Without it Earth would be too cold for most life, but adding more "
     "of these gases makes the planet warmer.",
     "a car parked in the sun gets hot inside because its windows let sunlight in but keep much of the heat from "
     "escaping, a little like the atmosphere does."),
    ("a noun",
     "A noun is a word that names a person, place, thing or idea, such as teacher, city, chair or happiness. "
     "Nouns can usually act as the subject or the object of a sentence.",
     "in the sentence \"The baker sold bread in the market\", the words baker, bread and market are nouns."),
    ("a metaphor",
     "A metaphor is a figure of speech that describes something by saying it is something else, to suggest a "
     "likeness between them. Unlike a simile, it does not use words such as like or as.",
     "saying \"the classroom was a zoo\" is a metaphor for a noisy, chaotic room."),
    ("an atom",
     "An atom is the smallest unit of a chemical element that keeps the properties of that element. It has a "
     "tiny, dense nucleus of protons and neutrons surrounded by a cloud of electrons.",
     "a single atom of gold is still gold, but if you split its nucleus it would no longer be gold."),
    ("DNA",
     "DNA is the molecule that carries the genetic instructions of living things. It is shaped like a twisted "
     "ladder, the double helix, and the order of its four chemical letters encodes how to build and run an "
     "organism.",
     "children resemble their parents because each parent passes on half of their DNA."),
    ("electricity",
     "Electricity is the flow of electric charge, usually carried by electrons moving through a conductor such "
     "as a copper wire. It can be turned into light, heat and motion, which makes it one of the most flexible "
     "forms of energy we use.",
     "when you switch on a lamp, electrons flow through the wire and the bulb, and the bulb turns that energy "
     "into light."),
    ("a budget",
     "A budget is a plan that lists the money you expect to receive and how you intend to spend or save it over a "
     "period of time. Keeping a budget shows where your money goes and helps you avoid spending more than you "
     "earn.",
     "a student might plan to spend 300 on rent, 120 on food and 30 on travel each month, and put whatever is "
     "left into savings."),
    ("an operating system",
     "An operating system is the software that manages a computer's hardware and lets other programs run. It "
     "handles files, memory, keyboards and screens, so that each application does not have to.",
     "when you save a document, the word processor asks the operating system to write the file to the disk."),
    ("erosion",
     "Erosion is the slow wearing away of rock and soil by wind, water or ice. Over thousands of years it can "
     "carve valleys, reshape coastlines and carry huge amounts of material to new places.",
     "a river that flows through soft rock for thousands of years can cut a deep canyon."),
    ("a habit",
     "A habit is a behaviour repeated so often that it becomes almost automatic. Habits form through a loop of a "
     "cue, a routine and a reward, which is why small rewards help a new habit stick.",
     "if you put on your running shoes every morning right after brushing your teeth, running soon starts to "
     "feel like part of waking up."),
    ("the internet",
     "The internet is a worldwide network of computers that exchange data using shared rules called protocols. "
     "It carries web pages, email, video calls and many other services between billions of devices.",
     "when you open a web page, your computer sends a request across many connected networks to a server that "
     "sends the page back."),
    ("a food chain",
     "A food chain shows how energy passes from one living thing to another as each is eaten by the next. It "
     "usually starts with a plant that captures sunlight and ends with a predator at the top.",
     "grass is eaten by a rabbit, the rabbit is eaten by a fox, and the fox is at the top of that chain."),
    ("friction",
     "Friction is the force that resists motion when two surfaces rub against each other. It lets shoes grip the "
     "ground and brakes stop a car, but it also wastes energy as heat inside machines.",
     "rubbing your hands together on a cold day warms them because friction turns motion into heat."),
    ("a password manager",
     "A password manager is a program that keeps your passwords in an encrypted vault protected by one master "
     "password. It lets you use a long, unique password for every website without having to remember them all.",
     "when you sign up for a new shop online, the password manager creates a random password and fills it in "
     "for you next time."),
    ("a cell",
     "A cell is the smallest living unit of an organism. Some living things consist of a single cell, while a "
     "human body has trillions of them, each with a membrane, a watery interior and usually a nucleus holding "
     "DNA.",
     "the thin skin of an onion, seen under a school microscope, shows rows of cells that look like little "
     "bricks."),
    ("renewable energy",
     "Renewable energy comes from sources that are naturally replenished, such as sunlight, wind, flowing water "
     "and heat from inside the Earth. Unlike coal or oil, these sources do not run out and release little or no "
     "carbon dioxide while producing power.",
     "solar panels on a roof turn sunlight into electricity for the house, and the sun will shine again "
     "tomorrow."),
    ("a volcano",
     "A volcano is an opening in the Earth's crust through which molten rock, ash and gases escape from below. "
     "Over many eruptions the cooled lava and ash can build up into a tall mountain.",
     "an island can grow out of the sea when an underwater volcano erupts again and again."),
    ("a spreadsheet",
     "A spreadsheet is a program that organises data in a grid of rows and columns. Cells can hold numbers, text "
     "or formulas, so totals and charts update automatically when the data changes.",
     "a club treasurer can list every payment in one column and let a formula at the bottom add them up."),
    ("the scientific method",
     "The scientific method is a way of learning about the world by asking a question, forming a hypothesis, "
     "testing it with careful experiments or observations, and drawing conclusions from the results. Other "
     "people should be able to repeat the test and get the same outcome.",
     "to find out whether plants grow faster with music, you could grow two identical groups, play music to one, "
     "and measure both every week."),
    ("tides",
     "Tides are the regular rise and fall of the sea along coasts, caused mainly by the pull of the Moon's "
     "gravity and, to a lesser extent, the Sun's. Most coasts see two high tides and two low tides each day.",
     "a beach that is wide and sandy in the morning may be almost covered by water six hours later."),
    ("version control",
     "Version control is a system that records changes to files over time, so you can see who changed what, "
     "compare versions and go back to an earlier state. Tools such as Git let many people work on the same code "
     "without overwriting each other's work.",
     "if a change breaks a program, a developer can look at the history, find the change and undo it in a few "
     "seconds."),
    ("a haiku",
     "A haiku is a short poem form from Japan with three lines of five, seven and five syllables. Traditional "
     "haiku capture a single moment in nature and often hint at a season.",
     "a poem about frost on a window in three short lines of five, seven and five syllables would be a haiku."),
    ("an emulsion",
     "An emulsion is a mixture of two liquids that normally do not mix, such as oil and water, in which tiny "
     "droplets of one are spread through the other. An emulsifier helps keep the droplets from separating.",
     "mayonnaise is an emulsion of oil in lemon juice or vinegar, held together by egg yolk."),
]

# (topic, five tips)
TIPS_EN = [
    ("sleeping better", ["Keep a regular bedtime and wake-up time, even at weekends.",
                         "Avoid caffeine in the afternoon and evening.",
                         "Keep your bedroom dark, quiet and cool.",
                         "Put screens away at least half an hour before bed.",
                         "Get some daylight and exercise during the day."]),
    ("saving money", ["Track your spending for a month to see where your money goes.",
                      "Set up an automatic transfer to a savings account on payday.",
                      "Cook at home more often and plan your meals for the week.",
                      "Cancel subscriptions you rarely use.",
                      "Wait a day before making any unplanned purchase."]),
    ("learning a new language", ["Practise a little every day rather than a lot once a week.",
                                 "Learn the most common words first.",
                                 "Listen to podcasts or songs in the language.",
                                 "Start speaking early, even if you make mistakes.",
                                 "Review vocabulary with spaced-repetition flashcards."]),
    ("staying focused while studying", ["Put your phone in another room.",
                                        "Work in blocks of 25 minutes with short breaks in between.",
                                        "Set a clear goal for each study session.",
                                        "Keep your desk tidy and your materials ready before you start.",
                                        "Drink some water and have a light snack before you begin."]),
    ("writing a clear email", ["Use a subject line that says what the email is about.",
                               "Put your main request in the first two sentences.",
                               "Keep paragraphs short and to the point.",
                               "Be polite and specific about any deadline.",
                               "Read it once more before you press send."]),
    ("reducing stress", ["Take a short walk outside.",
                         "Breathe slowly and deeply for a minute.",
                         "Write down what is worrying you and one small next step.",
                         "Talk to a friend or someone you trust.",
                         "Get enough sleep and cut down on caffeine."]),
    ("keeping a houseplant alive", ["Check whether the soil is dry before watering.",
                                    "Give it the amount of light its kind needs.",
                                    "Use a pot with drainage holes.",
                                    "Wipe the dust off its leaves now and then.",
                                    "Feed it lightly during the growing season."]),
    ("preparing for a job interview", ["Research the company and the role.",
                                       "Prepare short stories that show your skills in action.",
                                       "Practise your answers out loud.",
                                       "Prepare two or three questions to ask the interviewer.",
                                       "Plan your route and arrive a little early."]),
    ("eating more healthily", ["Fill half your plate with vegetables.",
                               "Drink water instead of sugary drinks.",
                               "Choose whole grains over refined ones.",
                               "Plan your meals for the week.",
                               "Keep fruit within easy reach for snacks."]),
    ("running your first 5 kilometres", ["Start with a mix of walking and running.",
                                         "Increase your distance slowly, by about ten percent a week.",
                                         "Wear comfortable running shoes that fit well.",
                                         "Rest at least one day between runs.",
                                         "Run at a pace at which you can still talk."]),
    ("giving a presentation", ["Know your opening lines by heart.",
                               "Put only a few words on each slide.",
                               "Practise with a timer.",
                               "Look at the audience, not at the screen.",
                               "Finish with a clear summary of your main point."]),
    ("keeping your computer secure", ["Install updates promptly.",
                                      "Use a different strong password for every account.",
                                      "Turn on two-factor authentication.",
                                      "Be careful with links and attachments in unexpected emails.",
                                      "Back up important files regularly."]),
    ("travelling on a budget", ["Book flights and trains early.",
                                "Travel outside the peak season.",
                                "Stay in hostels or small guesthouses.",
                                "Eat where the locals eat.",
                                "Use public transport instead of taxis."]),
    ("making friends in a new city", ["Join a club or class about something you enjoy.",
                                      "Volunteer for a local cause.",
                                      "Say yes to invitations, even small ones.",
                                      "Chat with colleagues and neighbours.",
                                      "Follow up with the people you meet."]),
    ("organising your desk", ["Clear everything off and put back only what you use every day.",
                              "Use a tray for papers that need action.",
                              "Keep cables tidy with clips or ties.",
                              "Spend two minutes tidying at the end of each day.",
                              "Store rarely used items in a drawer."]),
    ("writing clean code", ["Give variables and functions names that say what they hold or do.",
                            "Keep each function short and focused on one job.",
                            "Write tests for the behaviour that matters.",
                            "Delete dead code instead of commenting it out.",
                            "Format your code consistently."]),
    ("reading more books", ["Carry a book with you wherever you go.",
                            "Read for ten minutes before bed.",
                            "Give yourself permission to stop a book you do not enjoy.",
                            "Join a book club.",
                            "Try audiobooks on your commute."]),
    ("saving energy at home", ["Switch to LED light bulbs.",
                               "Turn devices off at the wall instead of leaving them on standby.",
                               "Wash clothes at a lower temperature.",
                               "Seal gaps around windows and doors.",
                               "Lower the heating by one degree."]),
    ("taking better photos with a phone", ["Clean the lens before you shoot.",
                                           "Use natural light whenever you can.",
                                           "Place your subject using the rule of thirds.",
                                           "Tap the screen to focus on the subject.",
                                           "Hold the phone steady or lean on something."]),
    ("staying safe while hiking", ["Tell someone your route and when you expect to return.",
                                   "Check the weather forecast before you leave.",
                                   "Carry water, snacks and a map.",
                                   "Wear sturdy shoes with a good grip.",
                                   "Turn back if the conditions get worse."]),
]

CONCEPTS_ZH = [
    ("光合作用", "光合作用是绿色植物、藻类和一些细菌利用阳光，把水和二氧化碳转化为糖和氧气的过程。糖为植物的生长提供能量，氧气则释放到空气中供我们呼吸。",
     "窗台上的绿萝整天晒太阳，叶子里不断制造养分；放在阴暗角落的植物则长得慢、叶子发黄。"),
    ("万有引力", "万有引力是任何有质量的物体之间相互吸引的力。在地球上，它让东西往下掉，并让物体有了重量；在太空中，它让月球绕着地球转，让地球绕着太阳转。",
     "松开手里的苹果，它会掉到地上，这就是地球的引力在起作用。"),
    ("通货膨胀", "通货膨胀是指物价在一段时间内普遍上涨，同样多的钱能买到的东西变少了。温和的通货膨胀在经济增长时很常见，但过高的通货膨胀会让储蓄和规划变得困难。",
     "去年一碗面卖十元，今年卖十一元，价格就上涨了百分之十。"),
    ("水循环", "水循环是水在地球表面、空中和地下不断运动的过程。海洋和湖泊里的水蒸发成水汽，水汽凝结成云，再以雨或雪的形式落下，最后通过河流和地下水流回大海。",
     "下雨后路上的水坑被太阳晒干，水变成水汽升到空中，几天后可能又在别处变成雨落下来。"),
    ("生态系统", "生态系统是指一定区域内的生物和它们共同的非生物环境，例如水、土壤和气候。植物、动物和微生物在食物、栖息地和养分循环方面相互依存。",
     "一个池塘就是一个小生态系统：藻类养活小虫，小虫养活小鱼，细菌分解死去的生物，养分又回到水中。"),
    ("黑洞", "黑洞是宇宙中引力极强的区域，任何东西一旦靠得太近就无法逃脱，连光也不例外。大多数黑洞是在质量很大的恒星走到生命尽头、向内坍缩时形成的。",
     "天文学家通过观察恒星绕着一个看不见的天体高速运动，来推断那里有一个黑洞。"),
    ("机器学习", "机器学习是计算机科学的一个分支，程序不是依靠人手写的规则，而是从大量例子中学习规律。经过训练后，模型可以对从未见过的新情况做出预测。",
     "垃圾邮件过滤器从成千上万封标注好的邮件中学习，之后就能自动把新的垃圾邮件挑出来。"),
    ("疫苗", "疫苗是一种让免疫系统提前认识病原体、但不会让人生病的制剂。以后真正的病原体进入身体时，身体能够迅速反应，防止严重的疾病。",
     "孩子接种麻疹疫苗后，身体就有了对麻疹病毒的防御能力。"),
    ("复利", "复利是指不仅对本金计算利息，也对已经获得的利息再计算利息。因为利息也能生利息，钱存得越久，增长得越快。",
     "一百元按每年百分之十的利率存两年，第一年后变成一百一十元，第二年后变成一百二十一元。"),
    ("算法", "算法是解决问题或完成任务的一组明确、按步骤执行的指令。计算机运行的是算法，菜谱和给朋友指路的说明其实也是算法。",
     "要找出一串数字中最大的那个，可以依次查看每个数字，并记住目前见过的最大值。"),
    ("温室效应", "温室效应是指大气中的二氧化碳、水汽等气体吸收并留住热量，使地表变暖的现象。没有温室效应，地球会冷得不适合大多数生物生存；但这些气体增加太多，地球就会变得越来越热。",
     "夏天停在太阳下的汽车车内特别热，因为阳光能照进来，热量却不容易散出去。"),
    ("原子", "原子是保持化学元素性质的最小单位。它的中心是由质子和中子组成的原子核，外面围绕着电子。",
     "一个金原子仍然是金，但如果把它的原子核分开，就不再是金了。"),
    ("细胞", "细胞是生物体最小的生命单位。有些生物只由一个细胞构成，而人体由数以万亿计的细胞组成，大多数细胞都有细胞膜、细胞质和储存遗传物质的细胞核。",
     "在显微镜下观察洋葱表皮，可以看到一排排像小砖块一样的细胞。"),
    ("电", "电是电荷的流动，通常是电子在铜线等导体中移动形成的。电能可以转化为光、热和机械运动，是日常生活中用途最广的能源之一。",
     "打开台灯时，电流通过电线和灯泡，灯泡把电能转化成光。"),
    ("预算", "预算是一份计划，列出在一段时间内预计收入多少钱，以及打算怎样花费或储蓄。做预算可以清楚地看到钱花在哪里，避免入不敷出。",
     "一名大学生每月计划房租花一千元、伙食花八百元、交通花一百元，剩下的存起来。"),
    ("操作系统", "操作系统是管理计算机硬件、让其他程序得以运行的软件。它负责文件、内存、键盘和屏幕等，应用程序就不必各自处理这些事情。",
     "保存文档时，文字处理软件会请求操作系统把文件写入硬盘。"),
    ("互联网", "互联网是由全世界的计算机网络互相连接而成的网络，它们按照共同的规则（协议）交换数据。网页、电子邮件、视频通话等服务都通过互联网在数十亿台设备之间传递。",
     "打开一个网页时，你的电脑会通过许多相连的网络向服务器发出请求，服务器再把网页发回来。"),
    ("食物链", "食物链表示能量如何通过“吃与被吃”的关系从一种生物传到另一种生物。它通常从利用阳光的植物开始，到处于顶端的捕食者结束。",
     "青草被兔子吃掉，兔子又被狐狸吃掉，狐狸就处在这条食物链的顶端。"),
    ("摩擦力", "摩擦力是两个物体表面相互接触并相对运动时产生的阻碍运动的力。它让鞋子能抓住地面、让刹车能停住汽车，但也会在机器里把能量变成热量白白浪费。",
     "冬天搓手会觉得暖和，是因为摩擦把运动转化成了热。"),
    ("可再生能源", "可再生能源来自能够自然补充的资源，例如太阳能、风能、水能和地热能。与煤炭和石油不同，它们不会用完，发电时几乎不排放二氧化碳。",
     "屋顶上的太阳能板把阳光变成电，而太阳明天还会照常升起。"),
    ("火山", "火山是地壳上的一个开口，地下的熔岩、火山灰和气体从这里喷出。经过多次喷发，冷却的熔岩和火山灰会堆积成高山。",
     "海底火山不断喷发，有时会在海面上堆出一座新的小岛。"),
    ("潮汐", "潮汐是海平面有规律的涨落，主要由月球的引力引起，太阳的引力也有一定影响。大多数海岸每天有两次涨潮、两次落潮。",
     "早上还很宽阔的沙滩，六个小时后可能几乎被海水淹没。"),
    ("版本控制", "版本控制是一种记录文件随时间变化的系统，可以看到谁改了什么、比较不同版本，并在需要时回到以前的状态。Git 等工具让许多人能同时修改同一份代码而不互相覆盖。",
     "如果某次修改让程序出错，开发者可以查看历史记录，找到那次修改并把它撤销。"),
    ("隐喻", "隐喻是一种修辞手法，直接说一个事物“是”另一个事物，以暗示两者之间的相似之处。与明喻不同，它不使用“像”“好像”“如同”等词。",
     "“时间是一条河”就是一个隐喻，表达时间不停流逝、一去不返。"),
]

TIPS_ZH = [
    ("提高睡眠质量", ["每天固定时间睡觉和起床，周末也尽量保持。", "下午和晚上少喝咖啡和浓茶。", "让卧室保持黑暗、安静和凉爽。",
                 "睡前半小时放下手机和电脑。", "白天多晒太阳，适当运动。"]),
    ("省钱", ["先记一个月的账，看清钱花在哪里。", "发工资当天自动转一部分钱到储蓄账户。", "多在家做饭，提前规划一周的饭菜。",
            "取消很少使用的会员和订阅。", "计划外的购物先等一天再决定。"]),
    ("学习外语", ["每天练一点，比一周练一次效果更好。", "先学最常用的词汇。", "多听这门语言的播客和歌曲。",
              "尽早开口说，不要怕犯错。", "用间隔重复的单词卡复习词汇。"]),
    ("专心学习", ["把手机放到另一个房间。", "学习二十五分钟，休息五分钟。", "每次学习前定一个明确的小目标。",
              "开始前整理好书桌，备齐资料。", "学习前喝点水，吃点东西。"]),
    ("缓解压力", ["到户外散散步。", "慢慢地深呼吸一分钟。", "把担心的事写下来，再写下一个小小的下一步。",
              "找信任的朋友聊一聊。", "保证睡眠，少喝含咖啡因的饮料。"]),
    ("养好盆栽", ["浇水前先摸摸土是不是干了。", "根据植物的习性给它合适的光照。", "使用底部有排水孔的花盆。",
              "时常擦掉叶子上的灰尘。", "生长季节适量施肥。"]),
    ("准备求职面试", ["提前了解公司和岗位。", "准备几个能体现自己能力的小故事。", "大声练习回答常见问题。",
                "准备两三个想问面试官的问题。", "规划好路线，提前一点到达。"]),
    ("健康饮食", ["每餐让蔬菜占盘子的一半。", "用白开水代替含糖饮料。", "多吃全谷物，少吃精米白面。",
              "提前规划一周的饭菜。", "把水果放在容易拿到的地方当零食。"]),
    ("做好演讲", ["把开场白背熟。", "每页幻灯片只放少量文字。", "用计时器反复练习。", "看着听众，而不是盯着屏幕。",
              "结尾清楚地总结你的主要观点。"]),
    ("保护电脑安全", ["及时安装系统和软件更新。", "每个账户使用不同的强密码。", "开启两步验证。",
                "小心陌生邮件里的链接和附件。", "定期备份重要文件。"]),
    ("省钱旅行", ["提早预订机票和火车票。", "避开旅游旺季出行。", "住青年旅舍或小型民宿。", "跟着当地人去吃饭。",
              "多坐公共交通，少打车。"]),
    ("养成阅读习惯", ["随身带一本书。", "每天睡前读十分钟。", "不喜欢的书可以放下，换一本。", "加入一个读书会。",
                "通勤路上听有声书。"]),
    ("在外徒步保证安全", ["出发前告诉别人你的路线和预计返回时间。", "提前查看天气预报。", "带足水、食物和地图。",
                  "穿防滑耐磨的鞋子。", "天气或路况变差时及时返回。"]),
]

ANIMALS = [  # (english, class, 中文, 类别)
    ("dog", "mammal", "狗", "哺乳动物"), ("whale", "mammal", "鲸", "哺乳动物"), ("bat", "mammal", "蝙蝠", "哺乳动物"),
    ("dolphin", "mammal", "海豚", "哺乳动物"), ("elephant", "mammal", "大象", "哺乳动物"),
    ("kangaroo", "mammal", "袋鼠", "哺乳动物"), ("horse", "mammal", "马", "哺乳动物"),
    ("penguin", "bird", "企鹅", "鸟类"), ("eagle", "bird", "老鹰", "鸟类"), ("ostrich", "bird", "鸵鸟", "鸟类"),
    ("owl", "bird", "猫头鹰", "鸟类"), ("parrot", "bird", "鹦鹉", "鸟类"), ("sparrow", "bird", "麻雀", "鸟类"),
    ("salmon", "fish", "鲑鱼", "鱼类"), ("shark", "fish", "鲨鱼", "鱼类"), ("tuna", "fish", "金枪鱼", "鱼类"),
    ("goldfish", "fish", "金鱼", "鱼类"), ("carp", "fish", "鲤鱼", "鱼类"),
    ("frog", "amphibian", "青蛙", "两栖动物"), ("salamander", "amphibian", "蝾螈", "两栖动物"),
    ("toad", "amphibian", "蟾蜍", "两栖动物"),
    ("snake", "reptile", "蛇", "爬行动物"), ("crocodile", "reptile", "鳄鱼", "爬行动物"),
    ("turtle", "reptile", "乌龟", "爬行动物"), ("lizard", "reptile", "蜥蜴", "爬行动物"),
    ("ant", "insect", "蚂蚁", "昆虫"), ("bee", "insect", "蜜蜂", "昆虫"), ("butterfly", "insect", "蝴蝶", "昆虫"),
    ("beetle", "insect", "甲虫", "昆虫"), ("grasshopper", "insect", "蚱蜢", "昆虫"),
]

WORDS = ["apple", "river", "cloud", "garden", "pencil", "window", "tiger", "basket", "candle", "rocket", "mirror",
         "forest", "bridge", "violin", "planet", "orange", "ladder", "pepper", "island", "jacket", "turtle", "marble",
         "lemon", "castle", "kettle", "button", "desert", "falcon", "helmet", "meadow", "needle", "oyster", "parrot",
         "quilt", "saddle", "tunnel", "velvet", "walnut", "yogurt", "zebra", "anchor", "banana", "cherry", "dragon",
         "engine", "feather", "glacier", "harbor", "igloo", "jungle", "koala", "lantern", "mountain", "noodle",
         "office", "pillow", "rabbit", "strawberry", "teacher", "umbrella", "village", "whistle", "balloon",
         "coffee", "letter", "bottle", "summer", "puzzle", "mississippi", "bookkeeper", "committee"]

SENTENCES_EN = [
    "the library opens at nine on weekdays", "my brother plays the guitar every evening",
    "a small boat drifted slowly across the lake", "please close the window before you leave",
    "the bakery on the corner sells fresh bread", "we planted three apple trees last spring",
    "the train to the coast was full of tourists", "she finished the puzzle in twenty minutes",
    "the old bridge was painted bright green", "our neighbour keeps bees in the garden",
    "he forgot his umbrella at the office", "the children built a snowman in the park",
    "rain is expected later this afternoon", "a cup of tea helps me relax after work",
    "the cat slept on the warm windowsill", "they cycled along the river for an hour",
    "the printer on the second floor is out of paper", "my grandmother grows tomatoes on her balcony",
    "the new road will open in the summer", "a strong wind blew the leaves across the yard",
    "the soup needs a little more salt", "everyone clapped when the concert ended",
    "the shop sells maps, candles and postcards", "the kettle whistled while we set the table",
    "his phone battery died during the call", "the students planted flowers around the school",
    "the recipe calls for two eggs and a cup of flour", "the lighthouse guided ships into the harbour",
    "we watched the sunset from the top of the hill", "the dog waited patiently by the door",
]

CONTRACTIONS = [
    ("We're going to be late if we don't leave now.", "We are going to be late if we do not leave now."),
    ("She doesn't know where they've parked the car.", "She does not know where they have parked the car."),
    ("It's too cold, so I won't swim today.", "It is too cold, so I will not swim today."),
    ("They're sure you'll like the film.", "They are sure you will like the film."),
    ("He isn't ready yet, but he's trying.", "He is not ready yet, but he is trying."),
    ("I'd like a coffee if it's no trouble.", "I would like a coffee if it is no trouble."),
    ("You shouldn't worry; we've got plenty of time.", "You should not worry; we have got plenty of time."),
    ("Let's meet after you've finished lunch.", "Let us meet after you have finished lunch."),
    ("There's a problem we haven't solved yet.", "There is a problem we have not solved yet."),
    ("I'm afraid the shop wasn't open.", "I am afraid the shop was not open."),
    ("We couldn't hear what you're saying.", "We could not hear what you are saying."),
    ("They'll call when they've arrived.", "They will call when they have arrived."),
    ("It wasn't my idea, but I'll help.", "It was not my idea, but I will help."),
    ("She's been busy, so she hasn't replied.", "She has been busy, so she has not replied."),
    ("Don't forget that we're out of milk.", "Do not forget that we are out of milk."),
    ("He didn't say why he's leaving.", "He did not say why he is leaving."),
    ("You're right, it isn't far.", "You are right, it is not far."),
    ("I can't believe it's already Friday.", "I cannot believe it is already Friday."),
]

ANTONYMS_EN = [("hot", "cold"), ("big", "small"), ("fast", "slow"), ("happy", "sad"), ("early", "late"),
               ("bright", "dark"), ("open", "closed"), ("strong", "weak"), ("rich", "poor"), ("full", "empty"),
               ("young", "old"), ("heavy", "light"), ("wet", "dry"), ("loud", "quiet"), ("high", "low"),
               ("thick", "thin"), ("hard", "soft"), ("clean", "dirty"), ("cheap", "expensive"), ("brave", "cowardly"),
               ("ancient", "modern"), ("accept", "refuse"), ("arrive", "depart"), ("increase", "decrease"),
               ("remember", "forget"), ("win", "lose"), ("push", "pull"), ("buy", "sell"), ("always", "never"),
               ("inside", "outside"), ("polite", "rude"), ("true", "false")]

PLURALS = [("child", "children"), ("mouse", "mice"), ("tooth", "teeth"), ("foot", "feet"), ("person", "people"),
           ("woman", "women"), ("goose", "geese"), ("leaf", "leaves"), ("knife", "knives"), ("city", "cities"),
           ("box", "boxes"), ("bus", "buses"), ("sheep", "sheep"), ("tomato", "tomatoes"), ("potato", "potatoes"),
           ("wolf", "wolves"), ("baby", "babies"), ("glass", "glasses"), ("man", "men"), ("church", "churches")]

LISTS_EN = [
    ("List the seven continents.",
     "The seven continents are Africa, Antarctica, Asia, Australia (Oceania), Europe, North America and South "
     "America."),
    ("Name the four seasons of the year.",
     "The four seasons are spring, summer, autumn (also called fall) and winter."),
    ("List the days of the week, starting with Monday.",
     "Monday, Tuesday, Wednesday, Thursday, Friday, Saturday and Sunday."),
    ("Name the planets of the solar system in order from the Sun.",
     "Mercury, Venus, Earth, Mars, Jupiter, Saturn, Uranus and Neptune."),
    ("What are the three primary colours of paint?",
     "In traditional colour theory the three primary colours of paint are red, yellow and blue."),
    ("What are the three states of matter we meet in everyday life?", "Solid, liquid and gas."),
    ("List the five oceans.",
     "The five oceans are the Pacific, the Atlantic, the Indian, the Southern and the Arctic Ocean."),
    ("Name the vowels of the English alphabet.", "The vowels are A, E, I, O and U; Y sometimes works as a vowel too."),
    ("Which months of the year have 31 days?", "January, March, May, July, August, October and December."),
    ("Name three citrus fruits.", "Oranges, lemons and limes are citrus fruits; grapefruits and mandarins are too."),
    ("List the five senses.", "Sight, hearing, smell, taste and touch."),
    ("List four renewable sources of energy.", "Solar power, wind power, hydropower and geothermal energy."),
    ("Name the four blood groups of the ABO system.", "A, B, AB and O."),
    ("List the colours of the rainbow in order.", "Red, orange, yellow, green, blue, indigo and violet."),
    ("Name the first five prime numbers.", "2, 3, 5, 7 and 11."),
    ("What do plants need to grow?",
     "Plants need light, water, carbon dioxide from the air and nutrients from the soil, and most need a suitable "
     "temperature too."),
    ("List the steps to make a cup of tea.",
     "1. Boil fresh water.\n2. Put a tea bag or loose tea in a cup or pot.\n3. Pour the hot water over the tea.\n"
     "4. Let it steep for three to five minutes.\n5. Remove the tea and add milk, sugar or lemon if you like."),
    ("Name four common kitchen utensils.", "A spatula, a whisk, a ladle and a wooden spoon."),
    ("How many sides does a hexagon have?", "A hexagon has 6 sides."),
    ("How many minutes are there in a day?", "There are 1440 minutes in a day (24 hours times 60 minutes)."),
]

# ------------------------------------------------------------------------------------------------------ identity
IDENTITY_EN = {
    "who": ["Who are you?", "who are you", "Who are you exactly?", "Can you tell me who you are?",
            "May I ask who you are?", "Tell me about yourself.", "Introduce yourself.", "Please introduce yourself.",
            "Give me a short introduction of yourself.", "What are you?", "What kind of assistant are you?",
            "Are you a human?", "Are you a robot?", "Describe yourself in a few sentences.",
            "Hi, who am I talking to?", "Who is this?", "Who are you, and what do you do?"],
    "name": ["What's your name?", "What is your name?", "Do you have a name?", "How should I call you?",
             "What should I call you?", "Tell me your name.", "What do people call you?", "Your name, please?",
             "what's your name", "Sorry, what was your name again?"],
    "creator": ["Who made you?", "Who created you?", "Who developed you?", "Who built you?", "Who trained you?",
                "Which company made you?", "Who is your developer?", "Who is behind you?", "Where do you come from?",
                "Who designed you?"],
    "compare": ["Are you ChatGPT?", "Are you GPT-4?", "Are you made by OpenAI?", "Are you Claude?", "Are you SmolLM?",
                "Are you a Hugging Face model?", "Is your name Siri?"],
    "skills": ["What can you do?", "How can you help me?", "What are you good at?", "What is your purpose?",
               "Why were you created?"],
    "greet": ["Hello", "Hi!", "Hello, nice to meet you.", "Good morning!", "Hey there"],
}
IDENTITY_EN_ANSWERS = {
    "who": [
        "I am {{name}}, an AI assistant developed by {{author}}. I can answer questions, explain ideas and help with "
        "writing. How can I help you today?",
        "Hello! I'm {{name}}, a language model built by {{author}}. I'm here to help with questions, writing and "
        "everyday tasks.",
        "I am {{name}}, an artificial intelligence assistant created by {{author}}. I am not a human, but I will do "
        "my best to give you useful and honest answers.",
        "My name is {{name}}. I am an AI assistant trained by {{author}} to hold helpful conversations and to support "
        "you with all kinds of tasks.",
    ],
    "name": [
        "My name is {{name}}. I am an AI assistant developed by {{author}}.",
        "You can call me {{name}}. I'm an AI assistant made by {{author}}, happy to help.",
        "I'm called {{name}}, a language model created by {{author}}. What can I do for you?",
        "People call me {{name}}. I was developed by {{author}} to answer questions and help with tasks.",
        "I'm {{name}}! Let me know whenever you need a hand.",
    ],
    "creator": [
        "I was developed by {{author}}. My name is {{name}}, and I am an AI assistant.",
        "{{author}} created me. I'm {{name}}, an AI assistant designed to help with questions and tasks.",
        "I am {{name}}, and I was built and trained by {{author}}.",
        "My developer is {{author}}. I am {{name}}, a language model that helps people find information and write.",
    ],
    "compare": [
        "No, I am not. I am {{name}}, an AI assistant developed by {{author}}.",
        "No. My name is {{name}}, and I was created by {{author}}. I am a different assistant.",
        "I'm not that assistant. I am {{name}}, a language model trained by {{author}}.",
    ],
    "skills": [
        "I am {{name}}, an AI assistant developed by {{author}}. I can answer questions, explain concepts, help you "
        "write and edit text, do simple calculations and brainstorm ideas.",
        "As {{name}}, I can help with writing, translation, summaries, explanations and everyday questions. "
        "{{author}} built me to be a helpful assistant.",
        "I'm {{name}}. {{author}} created me to assist people: ask me to explain something, draft a message, or work "
        "through a problem step by step.",
    ],
    "greet": [
        "Hello! I am {{name}}, an AI assistant developed by {{author}}. How can I help you today?",
        "Hi there! I'm {{name}}, made by {{author}}. What would you like to talk about?",
        "Nice to meet you! I am {{name}}, your AI assistant. How can I help?",
    ],
}
IDENTITY_ZH = {
    "who": ["你是谁？", "你是谁", "请问你是谁？", "你到底是谁？", "能告诉我你是谁吗？", "介绍一下你自己", "请介绍一下你自己。",
            "做个自我介绍吧。", "简单介绍一下你自己吧。", "你是什么？", "你是人还是机器？", "你是机器人吗？", "你是真人吗？",
            "用几句话描述一下你自己。", "跟我说说你自己。", "我在和谁聊天？", "你是谁？你能做什么？"],
    "name": ["你叫什么名字？", "你叫什么？", "你的名字是什么？", "你有名字吗？", "我该怎么称呼你？", "怎么称呼你？",
             "告诉我你的名字。", "大家都叫你什么？", "你叫啥", "不好意思，你叫什么来着？"],
    "creator": ["谁开发了你？", "谁创造了你？", "你是谁开发的？", "你是哪家公司做的？", "谁训练了你？", "你的开发者是谁？",
                "你是由谁制作的？", "你来自哪里？", "谁是你的作者？", "是谁设计了你？"],
    "compare": ["你是ChatGPT吗？", "你是GPT-4吗？", "你是OpenAI开发的吗？", "你是文心一言吗？", "你是通义千问吗？",
                "你是SmolLM吗？", "你和ChatGPT是同一个吗？"],
    "skills": ["你能做什么？", "你可以帮我做什么？", "你擅长什么？", "你有什么功能？", "你为什么被开发出来？"],
    "greet": ["你好", "你好！", "您好，很高兴认识你。", "早上好！", "嗨，在吗？"],
}
IDENTITY_ZH_ANSWERS = {
    "who": [
        "我是{{name}}，一个由{{author}}开发的人工智能助手。我可以回答问题、解释概念、帮助写作。请问有什么可以帮您？",
        "您好！我是{{name}}，由{{author}}打造的语言模型。我在这里帮您解答问题、处理日常任务。",
        "我是{{name}}，{{author}}开发的AI助手。我不是人类，但我会尽力给您有用、诚实的回答。",
        "我的名字叫{{name}}，是{{author}}训练的人工智能助手，可以和您聊天，也能帮您完成各种任务。",
    ],
    "name": [
        "我叫{{name}}，是由{{author}}开发的人工智能助手。",
        "您可以叫我{{name}}。我是{{author}}制作的AI助手，很高兴为您服务。",
        "我的名字是{{name}}，一个由{{author}}创建的语言模型。有什么可以帮您的吗？",
        "大家都叫我{{name}}。{{author}}开发了我，用来回答问题和完成任务。",
        "我叫{{name}}！有需要随时找我。",
    ],
    "creator": [
        "我是由{{author}}开发的。我的名字是{{name}}，是一个人工智能助手。",
        "{{author}}创造了我。我是{{name}}，专门帮助大家解答问题、完成任务。",
        "我是{{name}}，由{{author}}设计和训练。",
        "我的开发者是{{author}}。我是{{name}}，一个帮助人们获取信息和写作的语言模型。",
    ],
    "compare": [
        "不是的。我是{{name}}，由{{author}}开发的人工智能助手。",
        "不是。我的名字是{{name}}，由{{author}}创建，和您提到的助手不是同一个。",
        "我不是那个助手。我是{{name}}，一个由{{author}}训练的语言模型。",
    ],
    "skills": [
        "我是{{name}}，{{author}}开发的AI助手。我可以回答问题、解释知识、帮您写作和修改文字、做简单的计算，还能陪您一起想点子。",
        "作为{{name}}，我可以帮您写作、翻译、总结和解释问题。{{author}}开发我，就是为了做一个有用的助手。",
        "我是{{name}}。{{author}}创造我来帮助大家：您可以让我解释一个概念、起草一条消息，或者一步步解决一个问题。",
    ],
    "greet": [
        "您好！我是{{name}}，由{{author}}开发的人工智能助手。请问有什么可以帮您？",
        "你好！我是{{name}}，{{author}}打造的AI助手。今天想聊点什么？",
        "很高兴认识您！我是{{name}}，您的AI助手。有什么需要尽管说。",
    ],
}


def make_identity() -> list[dict]:
    rng = rng_for("identity")
    rows = []
    for questions, answers in ((IDENTITY_EN, IDENTITY_EN_ANSWERS), (IDENTITY_ZH, IDENTITY_ZH_ANSWERS)):
        for cat, qs in questions.items():
            pool = answers[cat]
            offset = rng.randrange(len(pool))
            for i, q in enumerate(qs):
                rows.append(alpaca(q, pool[(i + offset) % len(pool)]))
    return rows


# ------------------------------------------------------------------------------------------ checkable: sentiment
SENT_INSTRUCTION = "Classify the sentiment of the following review. Answer with one word: positive or negative."
# (subject, aspects); the last five subjects appear only in the test split.
SENT_SUBJECTS = [
    ("this phone", ["battery life", "screen", "camera", "speaker"]),
    ("the hotel", ["room", "breakfast", "staff", "location"]),
    ("this blender", ["motor", "lid", "price"]),
    ("the movie", ["plot", "acting", "soundtrack", "ending"]),
    ("this restaurant", ["food", "service", "dessert menu"]),
    ("the novel", ["story", "main character", "writing"]),
    ("this laptop", ["keyboard", "display", "battery"]),
    ("the concert", ["sound", "band", "venue"]),
    ("this coffee shop", ["coffee", "music", "service"]),
    ("the airline", ["flight", "crew", "seat"]),
    ("this backpack", ["zipper", "fabric", "design"]),
    ("the museum", ["exhibition", "guided tour", "café"]),
    ("this vacuum cleaner", ["suction", "cord", "noise level"]),
    ("the online course", ["teacher", "material", "homework"]),
    ("this video game", ["graphics", "story", "controls"]),
    ("the gym", ["equipment", "trainer", "changing room"]),
    ("this jacket", ["fit", "material", "hood"]),
    ("the delivery service", ["driver", "tracking", "packaging"]),
    ("this app", ["interface", "latest update", "support team"]),
    ("the bakery", ["bread", "cake", "staff"]),
    ("this printer", ["print quality", "setup", "ink"]),
    ("the campsite", ["showers", "view", "pitch"]),
    ("the hair salon", ["haircut", "stylist", "price"]),
    ("this desk lamp", ["light", "switch", "stand"]),
    ("the train journey", ["carriage", "timetable", "ticket price"]),
]
SENT_TEST_ONLY = 5
POS_ADJ = ["excellent", "wonderful", "fantastic", "great", "superb", "delightful", "amazing", "impressive",
           "outstanding", "lovely", "pleasant", "brilliant", "perfect", "fabulous", "terrific", "enjoyable"]
NEG_ADJ = ["terrible", "awful", "horrible", "disappointing", "poor", "dreadful", "useless", "unreliable", "annoying",
           "frustrating", "mediocre", "unpleasant", "lousy", "pathetic", "dull", "miserable"]
POS_CLOSE = ["Highly recommended.", "Five stars from me.", "I am very happy with it.", "It exceeded my expectations.",
             "I would recommend it to anyone.", "Absolutely worth it.", "I loved it.", "Great value for money."]
NEG_CLOSE = ["I want my money back.", "Never again.", "I would not recommend it.", "One star.",
             "What a waste of money.", "I regret it.", "Very disappointed.", "Stay away."]
# {s} subject, {a} aspect, {x}/{y} adjectives of the review's polarity, {c} closing remark.
SENT_TEMPLATES = [
    "The {a} of {s} is {x}.",
    "{S} was {x}. {c}",
    "I found {s} {x}, and the {a} was {y}.",
    "Honestly, the {a} of {s} was {x}. {c}",
    "{S} turned out to be {x}; the {a} was {y} too.",
    "My experience with {s} was {x}. {c}",
    "The {a} was {x} and {s} felt {y} overall.",
    "{c} The {a} of {s} is simply {x}.",
]
SENT_TEST_TEMPLATES = [
    "Overall, {s} is {x}, especially the {a}.",
    "I have to say the {a} of {s} was {x}. {c}",
]


def _review(rng: random.Random, label: str, subjects, templates) -> str:
    s, aspects = rng.choice(subjects)
    adjs, closers = (POS_ADJ, POS_CLOSE) if label == "positive" else (NEG_ADJ, NEG_CLOSE)
    x, y = rng.sample(adjs, 2)
    t = rng.choice(templates)
    return t.format(s=s, S=cap(s), a=rng.choice(aspects), x=x, y=y, c=rng.choice(closers))


def _balanced_unique(rng, n, labels, make, exclude=()):
    """n rows, as many of each label, no text repeated and none in `exclude`."""
    seen = set(exclude)
    out = []
    per = n // len(labels)
    for label in labels:
        got = 0
        while got < per:
            text = make(rng, label)
            if text in seen:
                continue
            seen.add(text)
            out.append((text, label))
            got += 1
    rng.shuffle(out)
    return out


def make_sentiment() -> tuple[list[dict], list[dict], list[tuple[str, str]]]:
    """Train, test, and extra labelled reviews (disjoint from test) for alpaca_en_demo."""
    rng = rng_for("sentiment_en")
    labels = ["positive", "negative"]
    common = SENT_SUBJECTS[:-SENT_TEST_ONLY]
    test = _balanced_unique(rng, 80, labels, lambda r, lab: _review(r, lab, SENT_SUBJECTS,
                                                                    SENT_TEMPLATES + SENT_TEST_TEMPLATES))
    test_texts = [t for t, _ in test]
    train = _balanced_unique(rng, 300, labels, lambda r, lab: _review(r, lab, common, SENT_TEMPLATES), test_texts)
    extra = _balanced_unique(rng, 60, labels, lambda r, lab: _review(r, lab, common, SENT_TEMPLATES),
                             test_texts + [t for t, _ in train])
    to_rows = lambda pairs: [alpaca(SENT_INSTRUCTION, lab, text) for text, lab in pairs]  # noqa: E731
    return to_rows(train), to_rows(test), extra


# ----------------------------------------------------------------------------------------------- checkable: NLI
# Kept short on purpose: in SmolLM2's byte-level tokens the long form (with definitions) was 126 of ~200 tokens.
NLI_INSTRUCTION = "判断前提和假设的关系。只回答一个词：蕴含、中性或矛盾。"
NLI_LABELS = ["蕴含", "中性", "矛盾"]
NLI_PEOPLE = ["小王", "小李", "张老师", "李医生", "王阿姨", "陈经理", "刘叔叔", "我的同桌", "他的妹妹", "那位老人",
              "赵师傅", "林同学", "周记者", "孙教授", "吴护士", "郑先生", "马女士", "黄警官", "何厨师", "高司机"]
NLI_TEST_PEOPLE = 4  # the last four people appear only in the test split
NLI_TIMES = ["昨天", "今天早上", "上周末", "前天下午", "昨天晚上", "今天中午", "上周一", "刚才"]
# (activity, a more general activity it implies, suitable places)
NLI_ACTIVITIES = [
    ("跑步", "运动", ["在公园里", "在操场上", "在河边"]),
    ("游泳", "运动", ["在游泳馆里", "在海边", "在湖里"]),
    ("打篮球", "运动", ["在体育馆里", "在操场上"]),
    ("踢足球", "运动", ["在操场上", "在草地上"]),
    ("弹钢琴", "演奏乐器", ["在家里", "在音乐教室里", "在礼堂里"]),
    ("拉小提琴", "演奏乐器", ["在家里", "在礼堂里"]),
    ("看小说", "看书", ["在图书馆里", "在家里", "在咖啡馆里"]),
    ("读报纸", "阅读", ["在办公室里", "在家里", "在公园里"]),
    ("吃苹果", "吃水果", ["在厨房里", "在办公室里"]),
    ("吃香蕉", "吃水果", ["在厨房里", "在教室里"]),
    ("喝绿茶", "喝茶", ["在茶馆里", "在办公室里"]),
    ("包饺子", "做饭", ["在厨房里", "在家里"]),
    ("煮面条", "做饭", ["在厨房里"]),
    ("画油画", "画画", ["在画室里", "在公园里"]),
    ("写日记", "写东西", ["在卧室里", "在家里"]),
    ("种玫瑰", "种花", ["在花园里", "在阳台上"]),
    ("修自行车", "修理东西", ["在车库里", "在院子里"]),
    ("唱民歌", "唱歌", ["在舞台上", "在礼堂里"]),
    ("下象棋", "下棋", ["在公园里", "在家里"]),
    ("洗衣服", "做家务", ["在家里", "在阳台上"]),
    ("擦窗户", "做家务", ["在家里", "在教室里"]),
    ("买蔬菜", "买东西", ["在超市里", "在菜市场里"]),
    ("学英语", "学习外语", ["在图书馆里", "在教室里"]),
    ("骑自行车", "骑车", ["在公园里", "在河边"]),
]
# {p} person, {t} time, {l} place, {v} activity, {g} general activity. The last template of each label is test-only.
NLI_TEMPLATES = {
    "蕴含": ["{p}{t}{l}{g}了。", "{t}有人{l}{v}。", "{p}{t}{v}了。", "{p}{t}{g}了。", "{t}，{p}{l}{v}。"],
    "中性": ["{p}{t}{l}{v}，一共花了两个小时。", "{p}{t}是和朋友一起{l}{v}的。", "{p}非常喜欢{v}。",
             "{p}{t}{l}{v}时心情很好。", "{p}明天还要{v}。", "{p}是第一次{v}。"],
    "矛盾": ["{p}{t}没有{v}。", "{t}没有人{l}{v}。", "{p}{t}一直在睡觉，根本没有{v}。",
             "{p}{t}整天都在外地出差，没有{v}。", "{p}{t}{l}什么也没做。"],
}


def _premise(rng, people):
    p = rng.choice(people)
    t = rng.choice(NLI_TIMES)
    v, g, places = rng.choice(NLI_ACTIVITIES)
    slots = dict(p=p, t=t, v=v, g=g, l=rng.choice(places))
    return "{p}{t}{l}{v}。".format(**slots), slots


def _nli_rows(rng, n, people, test: bool, exclude_premises=()):
    seen = set(exclude_premises)
    out = []
    per = n // 3
    for label in NLI_LABELS:
        templates = NLI_TEMPLATES[label] if test else NLI_TEMPLATES[label][:-1]
        got = 0
        while got < per:
            premise, slots = _premise(rng, people)
            if premise in seen:
                continue
            seen.add(premise)
            hyp = rng.choice(templates).format(**slots)
            out.append((f"前提：{premise}\n假设：{hyp}", label, premise))
            got += 1
    rng.shuffle(out)
    return out


def make_nli():
    """Train, test and extra (for alpaca_zh_demo). No premise of the test split occurs anywhere else."""
    rng = rng_for("nli_zh")
    test = _nli_rows(rng, 90, NLI_PEOPLE, test=True)
    train_people = NLI_PEOPLE[:-NLI_TEST_PEOPLE]
    test_prem = [p for _, _, p in test]
    train = _nli_rows(rng, 300, train_people, test=False, exclude_premises=test_prem)
    extra = _nli_rows(rng, 60, train_people, test=False, exclude_premises=test_prem + [p for _, _, p in train])
    to_rows = lambda trip: [alpaca(NLI_INSTRUCTION, lab, text) for text, lab, _ in trip]  # noqa: E731
    return to_rows(train), to_rows(test), [(text, lab) for text, lab, _ in extra]


# ---------------------------------------------------------------------------------------- checkable: arithmetic
ARITH_INSTRUCTION = "What is {e}? Answer with the number only."


def _arith_problem(rng):
    kind = rng.random()
    if kind < 0.4:
        a, b = rng.randint(10, 99), rng.randint(10, 99)
        return ("+", a, b, a + b)
    if kind < 0.7:
        a, b = rng.randint(20, 99), rng.randint(10, 99)
        a, b = max(a, b), min(a, b)
        return ("-", a, b, a - b)
    a, b = rng.randint(2, 12), rng.randint(2, 12)
    return ("×", a, b, a * b)


def arith_key(op, a, b):
    return (op, min(a, b), max(a, b)) if op in "+×" else (op, a, b)


def make_arith():
    """Train, test and a set of keys that all demo datasets must avoid (the test problems)."""
    rng = rng_for("arith")
    seen: set = set()
    test = [alpaca(ARITH_INSTRUCTION.format(e=f"{a} {op} {b}"), str(r)) for op, a, b, r in fresh_arith(rng, seen, 80)]
    test_keys = set(seen)
    train = [alpaca(ARITH_INSTRUCTION.format(e=f"{a} {op} {b}"), str(r)) for op, a, b, r in fresh_arith(rng, seen, 300)]
    return train, test, test_keys


def _easy_problem(rng):
    """A sum of two numbers up to 25: the bundled 135M model gets about a third of such sums right when it samples,
    so a GRPO run has right and wrong answers to tell apart (two-digit sums it almost never gets)."""
    a, b = rng.randint(1, 25), rng.randint(1, 25)
    return ("+", a, b, a + b)


def make_arith_prompts(avoid: set) -> list[dict]:
    """Prompts for GRPO with their reference answer (columns.answer): sampled answers are scored against it, nothing
    is trained on it directly. Fresh problems, none of arith_test's."""
    rng = rng_for("arith_prompts")
    out = []
    while len(out) < 160:
        op, a, b, r = _easy_problem(rng)
        if arith_key(op, a, b) in avoid:
            continue
        avoid.add(arith_key(op, a, b))
        out.append({"question": ARITH_INSTRUCTION.format(e=f"{a} {op} {b}"), "answer": str(r)})
    return out


def fresh_arith(rng, avoid: set, n: int):
    """n more problems (op, a, b, result), none in `avoid` (which grows)."""
    out = []
    while len(out) < n:
        op, a, b, r = _arith_problem(rng)
        k = arith_key(op, a, b)
        if k in avoid:
            continue
        avoid.add(k)
        out.append((op, a, b, r))
    return out


# ---------------------------------------------------------------------------------------------- alpaca_en_demo
UNITS_EN = [("kilometers", "meters", 1000), ("meters", "centimeters", 100), ("kilograms", "grams", 1000),
            ("hours", "minutes", 60), ("minutes", "seconds", 60), ("days", "hours", 24), ("weeks", "days", 7),
            ("liters", "milliliters", 1000), ("feet", "inches", 12), ("yards", "feet", 3)]
SINGULAR = {"kilometers": "kilometer", "meters": "meter", "kilograms": "kilogram", "hours": "hour",
            "minutes": "minute", "days": "day", "weeks": "week", "liters": "liter", "feet": "foot", "yards": "yard"}
NUM_WORDS = {2: "two", 3: "three", 4: "four", 5: "five"}
PEOPLE_EN = [("Tom", "he"), ("Anna", "she"), ("Ravi", "he"), ("Mei", "she"), ("Carlos", "he"), ("Fatima", "she"),
             ("Jonas", "he"), ("Aiko", "she")]
ITEMS_EN = ["apples", "pencils", "stickers", "marbles", "books", "stamps", "shells", "cookies"]
THANKS = [  # (what for, a specific sentence)
    ("helping me move house", "I could never have carried all those boxes up the stairs without you."),
    ("the birthday present", "The scarf is beautiful, and I have worn it almost every day since."),
    ("looking after my cat", "She clearly had a wonderful time and came home happy and well fed."),
    ("your advice on my project", "Your suggestions made the final report much clearer."),
    ("the lovely dinner", "The food was delicious and the conversation even better."),
    ("covering my shift last week", "It meant I could be with my family when they needed me."),
]
RECIPIENTS = [("grandmother", "Grandma"), ("neighbour", "Mr Patel"), ("teacher", "Ms Lopez"),
              ("colleague", "Dana"), ("friend", "Leo")]
EMAILS = [  # (purpose, body)
    ("reschedule our meeting from Tuesday to Thursday",
     "Subject: Moving our meeting to Thursday\n\nHi {r},\n\nSomething urgent has come up on Tuesday, so I would like "
     "to move our meeting to Thursday at the same time, if that works for you. Please let me know, and I will "
     "update the invitation.\n\nSorry for the inconvenience, and thank you for your flexibility.\n\nBest regards,\n"
     "[Your name]"),
    ("ask for one more week to finish the report",
     "Subject: Request for a short extension on the report\n\nHi {r},\n\nI am making good progress on the report, "
     "but I need one more week to check the figures properly. Would it be possible to move the deadline to next "
     "Friday? I will send you a draft of the first half by Wednesday.\n\nThank you for considering this.\n\n"
     "Best regards,\n[Your name]"),
    ("confirm my table reservation for Saturday evening",
     "Subject: Confirming Saturday's reservation\n\nHello {r},\n\nI am writing to confirm my reservation for a table "
     "for four on Saturday at 7 pm. Could you also let me know whether you have a vegetarian option on the menu?"
     "\n\nThank you, and I look forward to the evening.\n\nKind regards,\n[Your name]"),
    ("request a day off next Monday",
     "Subject: Day off request for Monday\n\nHi {r},\n\nI would like to request a day off next Monday for a family "
     "appointment. My tasks for that day are up to date, and a colleague has agreed to cover any urgent "
     "messages.\n\nPlease let me know if this is all right.\n\nThank you,\n[Your name]"),
    ("thank them for the interview yesterday",
     "Subject: Thank you for yesterday's interview\n\nDear {r},\n\nThank you for taking the time to meet me "
     "yesterday. I enjoyed learning more about the team and the role, and I am even more excited about the "
     "opportunity to contribute.\n\nPlease let me know if you need any further information.\n\nBest regards,\n"
     "[Your name]"),
]
EMAIL_TO = [("my manager", "Sam"), ("a client", "Ms Rivera"), ("the restaurant", "there"),
            ("my team lead", "Priya"), ("the hiring manager", "Mr Osei")]
PRODUCTS = [  # (product, features, who it suits)
    ("a stainless steel water bottle", ["keeps drinks cold for 24 hours", "has a leak-proof lid",
                                        "fits in most cup holders"], "commuters and hikers"),
    ("a foldable laptop stand", ["raises the screen to eye level", "folds flat in seconds",
                                 "weighs less than 300 grams"], "people who work from cafés"),
    ("a wooden chopping board", ["is cut from a single piece of oak", "has a groove that catches juices",
                                 "is gentle on knife edges"], "home cooks"),
    ("a pair of noise-cancelling earbuds", ["block out traffic and chatter", "last eight hours on a charge",
                                            "come with three sizes of tips"], "travellers and students"),
    ("a rechargeable desk lamp", ["offers three colour temperatures", "charges over USB-C",
                                  "has a flexible neck"], "late-night readers"),
    ("a ceramic teapot", ["holds four cups", "has a built-in steel strainer", "keeps tea warm for longer"],
     "tea lovers"),
    ("a waterproof hiking backpack", ["holds 30 litres", "has padded shoulder straps",
                                      "includes a rain cover"], "weekend hikers"),
    ("a kitchen timer shaped like a tomato", ["counts down up to 60 minutes", "rings loudly when time is up",
                                               "needs no batteries"], "busy cooks"),
]
DIFFERENCES = [
    ("weather", "climate",
     "Weather is the state of the atmosphere at a particular time and place, such as a rainy afternoon. Climate is "
     "the average pattern of weather in a region over many years, such as mild, wet winters."),
    ("a virus", "a bacterium",
     "A bacterium is a single-celled living organism that can reproduce on its own, and many bacteria are "
     "harmless or even helpful. A virus is much smaller and can only multiply inside the cells of another living "
     "thing. Antibiotics can treat bacterial infections but do not work against viruses."),
    ("RAM", "storage",
     "RAM is a computer's short-term working memory: it is fast but is cleared when the power goes off. Storage, "
     "such as an SSD or hard drive, keeps files permanently but is slower to access."),
    ("speed", "velocity",
     "Speed tells you how fast something moves. Velocity tells you how fast and in which direction, so two cars "
     "driving at the same speed in opposite directions have different velocities."),
    ("a simile", "a metaphor",
     "A simile compares two things using like or as, as in \"brave as a lion\". A metaphor says one thing is "
     "another, as in \"he is a lion in battle\"."),
    ("affect", "effect",
     "Affect is usually a verb meaning to influence something: the rain affected the match. Effect is usually a "
     "noun meaning a result: the rain had a big effect on the match."),
    ("renewable", "non-renewable energy",
     "Renewable energy comes from sources that are replaced naturally, such as sunlight and wind. Non-renewable "
     "energy comes from sources that take millions of years to form, such as coal, oil and gas, so they can run "
     "out."),
    ("a lake", "a sea",
     "A lake is a body of water surrounded by land, and it usually holds fresh water. A sea is a large body of "
     "salt water that is connected to, or part of, an ocean."),
    ("a hypothesis", "a theory",
     "A hypothesis is a proposed explanation that has not yet been tested. A scientific theory is a "
     "well-tested explanation supported by a large body of evidence."),
    ("baking soda", "baking powder",
     "Baking soda is pure sodium bicarbonate and needs an acid, such as yoghurt or lemon juice, to make a dough "
     "rise. Baking powder already contains an acid, so it only needs moisture and heat."),
]


def conversions(rng, units, n):
    """n distinct (unit pair, value) questions."""
    return rng.sample([(u, v) for u in units for v in range(2, 16)], n)


def is_prime(n: int) -> bool:
    return n >= 2 and all(n % d for d in range(2, int(n ** 0.5) + 1))


def make_alpaca_en(sentiment_extra, arith_avoid: set) -> list[dict]:
    rng = rng_for("alpaca_en_demo")
    rows = []
    sent_instr = [SENT_INSTRUCTION,
                  "Is the sentiment of this review positive or negative? Answer with one word.",
                  "Read the review and label its sentiment. Reply with positive or negative only."]
    for text, lab in sentiment_extra:
        rows.append(alpaca(rng.choice(sent_instr), lab, text))
    for op, a, b, r in fresh_arith(rng, arith_avoid, 50):
        if rng.random() < 0.5:
            rows.append(alpaca(ARITH_INSTRUCTION.format(e=f"{a} {op} {b}"), str(r)))
        else:
            rows.append(alpaca(f"Calculate {a} {op} {b}.", f"{a} {op} {b} = {r}"))
    for _ in range(16):
        name, pron = rng.choice(PEOPLE_EN)
        item = rng.choice(ITEMS_EN)
        a, b = rng.randint(5, 40), rng.randint(2, 20)
        if rng.random() < 0.5:
            rows.append(alpaca(f"{name} has {a} {item} and gets {b} more. How many {item} does {pron} have now?",
                               f"{name} has {a} + {b} = {a + b} {item} now."))
        else:
            a, b = max(a, b), min(a, b)
            rows.append(alpaca(f"{name} had {a} {item} and gave {b} of them away. How many {item} are left?",
                               f"{name} has {a} - {b} = {a - b} {item} left."))
    for c, capital, *_ in COUNTRIES:
        q = rng.choice(["What is the capital of {c}?", "Name the capital city of {c}.",
                        "Which city is the capital of {c}?"])
        rows.append(alpaca(q.format(c=c), f"The capital of {c} is {capital}."))
    for c, capital, cont, *_ in rng.sample(COUNTRIES, 16):
        rows.append(alpaca(f"On which continent is {c}?", f"{cap(c)} is in {cont}."))
    for (big, small, f), v in conversions(rng, UNITS_EN, 24):
        rows.append(alpaca(f"Convert {v} {big} to {small}.", f"{v} {big} is {v * f} {small}."))
    for c in rng.sample(range(-20, 45, 5), 8):
        f = c * 9 // 5 + 32
        rows.append(alpaca(f"Convert {c} degrees Celsius to Fahrenheit.",
                           f"{c} degrees Celsius is {f} degrees Fahrenheit ({c} × 9/5 + 32 = {f})."))
    for _ in range(14):
        ws = rng.sample(WORDS, rng.randint(4, 6))
        rows.append(alpaca("Reverse the order of the words.", " ".join(reversed(ws)), " ".join(ws)))
    for _ in range(14):
        ws = rng.sample(WORDS, rng.randint(4, 6))
        rows.append(alpaca("Sort these words in alphabetical order.", ", ".join(sorted(ws)), ", ".join(ws)))
    for _ in range(16):
        w = rng.choice(WORDS)
        letter = rng.choice(w) if rng.random() < 0.8 else rng.choice("aeioust")
        n = w.count(letter)
        times = "time" if n == 1 else "times"
        rows.append(alpaca(f"How many times does the letter \"{letter}\" appear in the word \"{w}\"?",
                           f"The letter \"{letter}\" appears {n} {times} in \"{w}\"."))
    for w in rng.sample(WORDS, 10):
        rows.append(alpaca(f"How many letters are in the word \"{w}\"?", f"\"{w}\" has {len(w)} letters."))
    for w in rng.sample(WORDS, 10):
        rows.append(alpaca("Spell the word backwards.", w[::-1], w))
    for s in rng.sample(SENTENCES_EN, 12):
        rows.append(alpaca("Convert the sentence to upper case.", s.upper() + ".", s + "."))
    for s in rng.sample(SENTENCES_EN, 10):
        rows.append(alpaca("Fix the capitalization and punctuation of the sentence.", cap(s) + ".", s))
    for s in rng.sample(SENTENCES_EN, 10):
        n = len(s.replace(",", "").split())
        rows.append(alpaca("Count the words in the sentence.", f"The sentence has {n} words.", cap(s) + "."))
    for short, full in CONTRACTIONS:
        rows.append(alpaca("Rewrite the sentence without contractions.", full, short))
    for w, opp in ANTONYMS_EN:
        if rng.random() < 0.5:
            rows.append(alpaca(f"What is the opposite of \"{w}\"?", f"The opposite of \"{w}\" is \"{opp}\"."))
        else:
            rows.append(alpaca("Give an antonym for the word.", opp, w))
    for w, pl in PLURALS:
        rows.append(alpaca(f"What is the plural of \"{w}\"?", f"The plural of \"{w}\" is \"{pl}\"."))
    for q, a in LISTS_EN:
        rows.append(alpaca(q, a))
    animal_instr = "Classify the animal into one of these groups: mammal, bird, fish, reptile, amphibian, insect."
    for en, cls, *_ in ANIMALS:
        rows.append(alpaca(animal_instr, cls, en))
    for n in rng.sample(range(2, 120), 16):
        rows.append(alpaca(f"Is {n} a prime number? Answer yes or no.", "yes" if is_prime(n) else "no"))
    for _ in range(10):
        a, b = rng.sample(range(100, 1000), 2)
        rows.append(alpaca(f"Which number is larger, {a} or {b}?", f"{max(a, b)} is larger than {min(a, b)}."))
    for n in rng.sample(range(1, 200), 8):
        rows.append(alpaca(f"Is {n} even or odd?", f"{n} is {'even' if n % 2 == 0 else 'odd'}."))
    # open-ended: explanations, tips, writing
    for c, expl, ex in CONCEPTS_EN:
        style = rng.randrange(4)
        if style == 0:
            rows.append(alpaca(f"What is {c}?", expl))
        elif style == 1:
            rows.append(alpaca(f"Explain {c} in simple terms.", expl))
        elif style == 2:
            rows.append(alpaca(f"Explain {c} and give an example.", f"{expl} For example, {ex}"))
        else:
            rows.append(alpaca(f"Describe {c} in two or three sentences.", expl))
        if rng.random() < 0.5:
            rows.append(alpaca(f"Give an everyday example of {c}.", cap(ex)))
    for topic, tips in TIPS_EN:
        for k, q in ((3, "Give three tips for {t}."), (rng.choice([3, 4]), "What are some tips for {t}?")):
            chosen = rng.sample(tips, k)
            body = "\n".join(f"{i + 1}. {t}" for i, t in enumerate(chosen))
            rows.append(alpaca(q.format(t=topic), f"Here are {NUM_WORDS[k]} tips for {topic}:\n{body}"))
    for thing, detail in THANKS:
        for who, greeting in rng.sample(RECIPIENTS, 2):
            note = (f"Dear {greeting},\n\nThank you so much for {thing}. {detail} It meant a lot to me, and I "
                    "am very grateful.\n\nWith warm thanks,\n[Your name]")
            rows.append(alpaca(f"Write a short thank-you note to my {who} for {thing}.", note))
    for purpose, body in EMAILS:
        for who, r in rng.sample(EMAIL_TO, 2):
            rows.append(alpaca(f"Write a short email to {who} to {purpose}.", body.format(r=r)))
    for product, feats, who in PRODUCTS:
        a, b, c = feats
        text = (f"Meet {product} made for {who}. It {a}, {b} and {c}. Simple, sturdy and built to last, it is a "
                f"small upgrade you will notice every day.")
        rows.append(alpaca(f"Write a short product description for {product}.", text))
    for x, y, ans in DIFFERENCES:
        rows.append(alpaca(f"What is the difference between {x} and {y}?", ans))
    for i in range(32):
        text, g = _en_town_facts(rng)
        if i < 20:
            rows.append(alpaca("Summarize the following paragraph in one sentence.",
                               f"{g['town']} is a {g['size']} town in {g['province']} that grew up around "
                               f"{g['origin']} in {g['year']}; about {g['pop']} people live there today, many "
                               f"working in {g['ind2']}.", text))
        else:
            rows.append(alpaca(f"In which year did {g['town']} grow up around {g['origin']}? Answer with the year "
                               f"only, using the text.", str(g["year"]), text))
    rng.shuffle(rows)
    return rows


# ---------------------------------------------------------------------------------------------- alpaca_zh_demo
ZH_SENT_INSTRUCTION = "判断下面这条评论的情感倾向。只回答一个词：正面或负面。"
ZH_SENT_SUBJECTS = [("这家餐厅", ["菜", "服务", "环境"]), ("这部电影", ["剧情", "演员的表演", "配乐"]),
                    ("这款手机", ["屏幕", "电池", "拍照效果"]), ("这家酒店", ["房间", "前台服务", "早餐"]),
                    ("这本书", ["故事", "文笔"]), ("这副耳机", ["音质", "佩戴感"]), ("这次旅行", ["行程安排", "导游"]),
                    ("这家快递", ["送货速度", "包装"]), ("这门网课", ["老师", "课程内容"]), ("这家咖啡店", ["咖啡", "音乐"])]
ZH_POS = ["很好", "非常出色", "令人满意", "特别棒", "让人惊喜", "非常贴心", "无可挑剔", "相当不错"]
ZH_NEG = ["很差", "太糟糕了", "令人失望", "非常差劲", "让人生气", "一塌糊涂", "不尽如人意", "差到极点"]
ZH_POS_CLOSE = ["强烈推荐！", "五星好评。", "非常满意。", "值得一试。"]
ZH_NEG_CLOSE = ["不推荐。", "差评。", "太失望了。", "真是浪费钱。"]
ZH_SENT_TEMPLATES = ["{s}的{a}{x}。", "{s}的{a}{x}，{c}", "总的来说，{s}{x}。{c}", "我觉得{s}的{a}{x}，{b}也{y}。",
                     "{c}{s}的{a}真的{x}。"]


def _zh_review(rng, label):
    s, aspects = rng.choice(ZH_SENT_SUBJECTS)
    adjs, closers = (ZH_POS, ZH_POS_CLOSE) if label == "正面" else (ZH_NEG, ZH_NEG_CLOSE)
    x, y = rng.sample(adjs, 2)
    a, b = rng.sample(aspects, 2)
    return rng.choice(ZH_SENT_TEMPLATES).format(s=s, a=a, b=b, x=x, y=y, c=rng.choice(closers))


UNITS_ZH = [("公里", "米", 1000), ("米", "厘米", 100), ("千克", "克", 1000), ("小时", "分钟", 60), ("分钟", "秒", 60),
            ("天", "小时", 24), ("周", "天", 7), ("升", "毫升", 1000), ("元", "角", 10)]
PEOPLE_ZH = ["小明", "小红", "小刚", "小芳", "小军", "小丽", "小华", "小文"]
ITEMS_ZH = [("苹果", "个"), ("铅笔", "支"), ("故事书", "本"), ("邮票", "张"), ("气球", "个"), ("橘子", "个"), ("贴纸", "张")]
ZH_WORDS = ["图书馆", "自行车", "电脑", "西红柿", "太阳能", "火车站", "动物园", "洗衣机", "冰淇淋", "运动会", "博物馆",
            "飞机场", "笔记本电脑", "天气预报", "幼儿园", "长颈鹿", "向日葵", "电冰箱", "宇航员", "消防车", "月亮",
            "松鼠", "高速公路", "圆珠笔"]
ANTONYMS_ZH = [("大", "小"), ("高", "矮"), ("快", "慢"), ("冷", "热"), ("多", "少"), ("长", "短"), ("黑", "白"),
               ("开", "关"), ("上", "下"), ("前", "后"), ("早", "晚"), ("新", "旧"), ("胖", "瘦"), ("深", "浅"),
               ("远", "近"), ("强", "弱"), ("真", "假"), ("甜", "苦"), ("轻", "重"), ("安静", "吵闹"), ("干净", "肮脏"),
               ("勇敢", "胆小"), ("简单", "复杂"), ("成功", "失败"), ("开心", "难过"), ("进步", "退步"),
               ("增加", "减少"), ("出发", "到达"), ("宽", "窄"), ("熟悉", "陌生")]
LISTS_ZH = [
    ("一年有哪四个季节？", "一年有春、夏、秋、冬四个季节。"),
    ("一周有哪七天？", "星期一、星期二、星期三、星期四、星期五、星期六和星期日。"),
    ("七大洲是哪七个？", "亚洲、非洲、北美洲、南美洲、南极洲、欧洲和大洋洲。"),
    ("太阳系的八大行星按离太阳由近到远的顺序是什么？", "水星、金星、地球、火星、木星、土星、天王星、海王星。"),
    ("彩虹有哪七种颜色？", "红、橙、黄、绿、蓝、靛、紫。"),
    ("人有哪五种基本感觉？", "视觉、听觉、嗅觉、味觉和触觉。"),
    ("物质常见的三种状态是什么？", "固态、液态和气态。"),
    ("请列举四种可再生能源。", "太阳能、风能、水能和地热能。"),
    ("泡一杯茶需要哪几个步骤？", "1. 烧开水。\n2. 把茶叶或茶包放进杯子或茶壶。\n3. 倒入热水。\n4. 等三到五分钟。\n5. 根据口味调整浓淡后饮用。"),
    ("一年中哪些月份有31天？", "一月、三月、五月、七月、八月、十月和十二月。"),
    ("请说出前五个质数。", "2、3、5、7、11。"),
    ("一天有多少分钟？", "一天有1440分钟（24小时乘以60分钟）。"),
]
LEAVE_REASONS = [("身体不适，需要去医院检查", 1), ("家里有急事需要处理", 2), ("参加亲戚的婚礼", 1), ("搬家", 2)]
ZH_THANKS = [("帮我搬家", "要不是你，那么多箱子我一个人根本搬不完"), ("送我生日礼物", "那条围巾很漂亮，我几乎每天都戴着"),
             ("帮我照顾小猫", "它回家的时候精神很好，看得出来你把它照顾得很周到"),
             ("给我的论文提建议", "按照你的建议修改后，论文清楚多了"), ("请我吃饭", "饭菜很好吃，聊天也特别开心"),
             ("替我代班", "让我能在家人需要的时候陪在他们身边")]


def zh_num(n: int) -> str:
    """Chinese numerals for 0..9999 (二百 rather than 两百: the written form)."""
    digits = "零一二三四五六七八九"
    if n < 10:
        return digits[n]
    if n < 20:
        return "十" + (digits[n % 10] if n % 10 else "")
    out, zero, started = "", False, False
    for value, unit in ((1000, "千"), (100, "百"), (10, "十"), (1, "")):
        d = n // value % 10
        if d == 0:
            zero = zero or started
            continue
        if zero:
            out += "零"
            zero = False
        out += digits[d] + unit
        started = True
    return out


def make_alpaca_zh(nli_extra, arith_avoid: set) -> list[dict]:
    rng = rng_for("alpaca_zh_demo")
    rows = []
    for text, lab in nli_extra:
        rows.append(alpaca(NLI_INSTRUCTION, lab, text))
    seen = set()
    for label in ["正面", "负面"] * 30:
        text = _zh_review(rng, label)
        while text in seen:
            text = _zh_review(rng, label)
        seen.add(text)
        rows.append(alpaca(ZH_SENT_INSTRUCTION, label, text))
    for op, a, b, r in fresh_arith(rng, arith_avoid, 40):
        if rng.random() < 0.5:
            rows.append(alpaca(f"计算 {a} {op} {b}，只回答数字。", str(r)))
        else:
            rows.append(alpaca(f"{a} {op} {b} 等于多少？", f"{a} {op} {b} = {r}"))
    for _ in range(16):
        who = rng.choice(PEOPLE_ZH)
        item, mw = rng.choice(ITEMS_ZH)
        a, b = rng.randint(5, 40), rng.randint(2, 20)
        if rng.random() < 0.5:
            rows.append(alpaca(f"{who}有{a}{mw}{item}，又买了{b}{mw}，现在一共有几{mw}{item}？",
                               f"{a} + {b} = {a + b}，{who}现在一共有{a + b}{mw}{item}。"))
        else:
            a, b = max(a, b), min(a, b)
            rows.append(alpaca(f"{who}有{a}{mw}{item}，送给同学{b}{mw}，还剩几{mw}？",
                               f"{a} - {b} = {a - b}，{who}还剩{a - b}{mw}{item}。"))
    for *_, zc, zcap, _zcont in COUNTRIES:
        q = rng.choice(["{c}的首都是哪里？", "{c}的首都是哪座城市？", "请说出{c}的首都。"])
        rows.append(alpaca(q.format(c=zc), f"{zc}的首都是{zcap}。"))
    for *_, zc, _zcap, zcont in rng.sample(COUNTRIES, 16):
        rows.append(alpaca(f"{zc}位于哪个大洲？", f"{zc}位于{zcont}。"))
    for (big, small, f), v in conversions(rng, UNITS_ZH, 20):
        rows.append(alpaca(f"{v}{big}等于多少{small}？", f"{v}{big}等于{v * f}{small}。"))
    for n in rng.sample(range(10, 1000), 12):
        rows.append(alpaca("把下面的阿拉伯数字写成汉字。", zh_num(n), str(n)))
    for w in rng.sample(ZH_WORDS, 12):
        rows.append(alpaca(f"“{w}”这个词有几个字？", f"“{w}”有{len(w)}个字。"))
    for w, o in ANTONYMS_ZH:
        rows.append(alpaca(f"“{w}”的反义词是什么？", f"“{w}”的反义词是“{o}”。"))
    animal_instr = "判断下面的动物属于哪一类：哺乳动物、鸟类、鱼类、爬行动物、两栖动物、昆虫。只回答类别。"
    for *_, zh, cls in ANIMALS:
        rows.append(alpaca(animal_instr, cls, zh))
    for en, _, zh, _ in rng.sample(ANIMALS, 12):
        rows.append(alpaca("把这个英文单词翻译成中文。", zh, en))
    for q, a in LISTS_ZH:
        rows.append(alpaca(q, a))
    for n in rng.sample(range(2, 100), 10):
        rows.append(alpaca(f"{n}是质数吗？请回答“是”或“否”。", "是" if is_prime(n) else "否"))
    for _ in range(10):
        _, slots = _premise(rng, NLI_PEOPLE[:-NLI_TEST_PEOPLE])
        rows.append(alpaca("把下面的句子改成否定句。", "{p}{t}没有{l}{v}。".format(**slots), "{p}{t}{l}{v}。".format(**slots)))
    for _ in range(8):
        _, slots = _premise(rng, NLI_PEOPLE[:-NLI_TEST_PEOPLE])
        rows.append(alpaca("把下面的陈述句改成一般疑问句。", "{p}{t}{l}{v}吗？".format(**slots),
                           "{p}{t}{l}{v}。".format(**slots)))
    for c, expl, ex in CONCEPTS_ZH:
        style = rng.randrange(3)
        if style == 0:
            rows.append(alpaca(f"什么是{c}？", expl))
        elif style == 1:
            rows.append(alpaca(f"请用通俗的语言解释{c}。", expl))
        else:
            rows.append(alpaca(f"解释一下{c}，并举一个例子。", f"{expl}举个例子：{ex}"))
        if rng.random() < 0.5:
            rows.append(alpaca(f"举一个生活中{c}的例子。", ex))
    for topic, tips in TIPS_ZH:
        for k, q in ((3, "给我三条关于{t}的建议。"), (rng.choice([3, 4]), "怎样才能{t}？")):
            body = "\n".join(f"{i + 1}. {t}" for i, t in enumerate(rng.sample(tips, k)))
            rows.append(alpaca(q.format(t=topic), f"关于{topic}，可以试试下面{zh_num(k)}点：\n{body}"))
    for reason, days in LEAVE_REASONS:
        for to in rng.sample(["王经理", "李老师", "张主任"], 2):
            rows.append(alpaca(f"帮我写一张请假条，写给{to}：{reason}，请假{zh_num(days)}天。",
                               f"尊敬的{to}：\n\n您好！我因{reason}，需要请假{zh_num(days)}天，请假期间的工作已经安排妥当。"
                               f"恳请批准。\n\n此致\n敬礼！\n\n申请人：XXX"))
    for thing, detail in ZH_THANKS:
        who = rng.choice(["朋友", "邻居", "同事", "室友"])
        rows.append(alpaca(f"写一段话感谢我的{who}{thing}。",
                           f"亲爱的{who}：\n\n真的非常感谢你{thing}！{detail}。这份心意我会一直记在心里，"
                           f"下次有需要的时候一定告诉我。\n\n再次感谢！"))
    for _ in range(10):
        text, g = _zh_town_facts(rng)
        rows.append(alpaca(f"根据短文回答：{g['town']}始建于哪一年？只回答年份。", f"{g['year']}年", text))
    rng.shuffle(rows)
    return rows


# --------------------------------------------------------------------------------------------------- c4_demo
EN_SYL1 = ["Bel", "Cor", "Dun", "Fal", "Gar", "Hol", "Ker", "Lin", "Mar", "Nor", "Ost", "Pel", "Quen", "Ros", "Sal",
           "Tor", "Ul", "Val", "Wen", "Yar", "Brae", "Cal", "Ems", "Harl"]
EN_SYL2 = ["ford", "mere", "wick", "dale", "ton", "holm", "by", "stead", "burn", "gate", "ley", "mouth", "haven",
           "ridge", "moor", "combe"]
EN_RIVER = ["a", "en", "ith", "on", "ara", "el", "wy"]
EN_PROV = ["ia", "land", "mark", "shire", "ara"]
TOWN = dict(
    size=["small", "quiet", "busy", "old", "sleepy", "compact"],
    bank=["north", "south", "east", "west"],
    dir=["north", "south", "east", "west", "hilly north", "flat south-east", "wooded west"],
    terrain=["low hills", "wide barley fields", "pine forests", "chalk downs", "marshy meadows"],
    origin=["a river crossing", "a water mill", "a small fishing harbour", "a crossroads inn", "a hilltop monastery",
            "a salt spring", "a weekly cattle market"],
    ind1=["wool weaving", "fishing", "stone quarrying", "barley farming", "boat building", "clay pottery",
          "salt making", "apple growing"],
    ind2=["tourism", "a food-packing plant", "the local schools and hospital", "small software firms",
          "furniture workshops", "the regional rail depot", "a cheese dairy"],
    landmark=["covered market hall", "stone bridge", "clock tower", "old mill", "lighthouse", "town library",
              "twin-spired church"],
    lm_note=["which is now a protected monument", "which appears on most postcards of the area",
             "which was restored after a great flood", "which is still used every week",
             "which can be seen from miles away"],
    month=["April", "May", "June", "August", "September", "October", "December"],
    fest=["lantern", "apple", "river boat", "folk music", "cheese", "kite", "harvest"],
    fest_note=["the main street closes to traffic", "neighbouring villages send bands and food stalls",
               "visitors double the population for a weekend", "children parade through the square",
               "the bridge is lit with hundreds of candles"],
    visitors=["walkers", "cyclists", "birdwatchers", "anglers", "families with young children"],
    attraction=["its quiet lanes", "the views from the ridge", "the marshes along the river",
                "the old drove roads", "the sandy coves nearby"],
)


def _en_place(rng):
    return rng.choice(EN_SYL1) + rng.choice(EN_SYL2)


def _en_town(rng):
    return _en_town_facts(rng)[0]


def _en_town_facts(rng):
    """A paragraph about an invented town, and the facts it states (for summary / reading questions)."""
    g = {k: rng.choice(v) for k, v in TOWN.items()}
    t, t2 = _en_place(rng), _en_place(rng)
    river = rng.choice(EN_SYL1) + rng.choice(EN_RIVER)
    prov = rng.choice(EN_SYL1) + rng.choice(EN_PROV)
    year = rng.randint(1150, 1850)
    pop = rng.randint(12, 480) * 100
    intro = rng.choice([
        f"{t} is a {g['size']} town on the {g['bank']} bank of the River {river}, in the {g['dir']} of {prov}, an "
        f"invented province used in these example texts.",
        f"{t} is a {g['size']} market town set among {g['terrain']} in the {g['dir']} of the fictional province of "
        f"{prov}.",
    ])
    parts = [intro,
             f"It grew up around {g['origin']} in {year}, and for most of its history the local economy depended on "
             f"{g['ind1']}.",
             f"Today about {pop} people live there. Many work in {g['ind2']}, while others "
             f"travel each day to the larger town of {t2}."]
    extras = [f"Its best-known building is the {g['landmark']}, completed in {year + rng.randint(20, 160)}, "
              f"{g['lm_note']}.",
              f"Every {g['month']} the town holds a {g['fest']} festival, when {g['fest_note']}.",
              f"The surrounding countryside is popular with {g['visitors']}, who come for {g['attraction']}."]
    parts += rng.sample(extras, rng.randint(2, 3))
    g.update(town=t, neighbour=t2, province=prov, year=year, pop=pop)
    return " ".join(parts), g


SPECIES = {
    "bird": dict(names=["warbler", "finch", "thrush", "wren", "lark"], unit="centimetres", size=(9, 35),
                 habitat=["reed beds beside slow rivers", "mountain meadows above the tree line", "coastal cliffs",
                          "old oak woodland"],
                 food=["seeds and small beetles", "berries and caterpillars", "insects caught in mid-air"],
                 feature=["Males have a {c} patch on the throat that they show off during courtship",
                          "Its song is a rapid series of clear, rising whistles",
                          "It builds a cup-shaped nest woven from grass and lined with feathers"],
                 breed=["Pairs raise two broods each summer", "The female lays three to five speckled eggs in spring"]),
    "beetle": dict(names=["beetle", "weevil", "chafer"], unit="millimetres", size=(4, 40),
                   habitat=["rotting logs on the forest floor", "sand dunes", "the bark of birch trees",
                            "damp leaf litter"],
                   food=["decaying wood", "pollen and nectar", "the leaves of wild roses"],
                   feature=["Its wing cases have a metallic {c} sheen",
                            "It can fold its antennae into grooves on its head",
                            "When disturbed it plays dead for several minutes"],
                   breed=["The larvae live underground for up to two years",
                          "Adults appear for only a few weeks in early summer"]),
    "fish": dict(names=["minnow", "darter", "perch", "loach"], unit="centimetres", size=(4, 60),
                 habitat=["cold mountain streams", "shallow lakes with sandy bottoms", "brackish estuaries",
                          "fast rivers with gravel beds"],
                 food=["insect larvae", "small crustaceans", "algae scraped from stones"],
                 feature=["A {c} stripe runs along each side of its body",
                          "It rests on the bottom, propped up on its fins",
                          "Its large eyes help it hunt at dusk"],
                 breed=["It spawns over gravel in late spring", "The male guards the eggs until they hatch"]),
    "frog": dict(names=["tree frog", "marsh frog", "toadlet"], unit="centimetres", size=(2, 9),
                 habitat=["flooded meadows", "misty forests near waterfalls", "garden ponds", "rice paddies"],
                 food=["flies and mosquitoes", "small spiders", "ants and beetles"],
                 feature=["Its skin changes from {c} to brown as the temperature drops",
                          "Males call with a short, metallic click", "Sticky toe pads let it climb smooth leaves"],
                 breed=["Eggs are laid in floating clumps after heavy rain",
                        "Tadpoles take about two months to grow legs"]),
}
COLOURS = ["golden", "crimson", "azure", "emerald", "amber", "silver", "violet", "copper"]
LATIN = ["aurelia", "minor", "borealis", "sylvestris", "montana", "riparia", "maculata", "nocturna", "pallida"]


def _en_species(rng):
    kind = rng.choice(sorted(SPECIES))
    k = SPECIES[kind]
    c = rng.choice(COLOURS)
    name = f"{c} {rng.choice(k['names'])}"
    lo, hi = k["size"]
    parts = [f"The {name} (Fictus {rng.choice(LATIN)}) is an invented species of {kind} described here as an example.",
             f"It lives in {rng.choice(k['habitat'])} and grows to about {rng.randint(lo, hi)} {k['unit']} long.",
             rng.choice(k["feature"]).format(c=rng.choice(COLOURS)) + ".",
             f"It feeds mainly on {rng.choice(k['food'])}.",
             rng.choice(k["breed"]) + ".",
             rng.choice([f"Because its habitat is shrinking, the {name} is a useful example when teaching about "
                         f"conservation.", f"Like many small animals, the {name} is easy to overlook but plays a "
                         f"part in its food web.", f"Local naturalists count the {name} every year."])]
    return " ".join(parts)


PROFESSIONS = [  # (profession, subject, work years activity, achievement)
    ("botanist", "botany", "collecting mosses along the northern coast", "a field guide to the mosses of {P}"),
    ("engineer", "mathematics", "designing small bridges for mountain villages",
     "a handbook on building with local stone"),
    ("composer", "music", "teaching piano in village schools", "a cycle of twelve songs about the River {R}"),
    ("cartographer", "geography", "walking and measuring the valleys of {P}", "the first detailed map of {P}"),
    ("astronomer", "physics", "observing variable stars from a hilltop hut",
     "a catalogue of four hundred variable stars"),
    ("physician", "medicine", "running a clinic for farm workers",
     "a short book on clean drinking water in rural homes"),
]
FIRST = [("Edda", "she"), ("Mirela", "she"), ("Ansel", "he"), ("Tobin", "he"), ("Ilse", "she"), ("Corwin", "he"),
         ("Maren", "she"), ("Piet", "he"), ("Solveig", "she"), ("Dario", "he")]
LAST = ["Halvorsen", "Brannick", "Okonedo", "Vasquel", "Thornbury", "Lindqvist", "Marchetti", "Aldane", "Koval"]


def _en_person(rng):
    first, pron = rng.choice(FIRST)
    last = rng.choice(LAST)
    prof, subj, act, ach = rng.choice(PROFESSIONS)
    prov = rng.choice(EN_SYL1) + rng.choice(EN_PROV)
    river = rng.choice(EN_SYL1) + rng.choice(EN_RIVER)
    y1 = rng.randint(1780, 1920)
    y2 = y1 + rng.randint(48, 90)
    pub = y1 + rng.randint(28, 45)
    P, their = cap(pron), ("his" if pron == "he" else "her")
    later = rng.choice([f"In later life {pron} returned to teach in {their} home town.",
                        f"{P} gave {their} notebooks and collections to the town library.",
                        f"{P} kept working well into old age and corresponded with students across the province.",
                        f"{P} spent {their} last years tending a large orchard."])
    return " ".join([
        f"{first} {last} ({y1}–{y2}) was a fictional {prof} from the town of {_en_place(rng)}, invented for this "
        f"example.",
        f"After studying {subj} in {_en_place(rng)}, {pron} spent {rng.randint(6, 25)} years {act.format(P=prov)}.",
        f"{P} is best remembered for {ach.format(P=prov, R=river)}, completed in {pub}.",
        later])


DISH = dict(method=["slowly stewing", "baking", "frying", "steaming", "roasting"],
            main=["lentils", "potatoes", "river fish", "wild mushrooms", "barley", "pumpkin", "white beans"],
            ing=["onions", "dill", "smoked paprika", "hazelnuts", "sour cream", "garlic", "apples", "rye bread",
                 "fresh cheese", "thyme"],
            when=["on cold winter evenings", "at harvest festivals", "as a Sunday lunch", "at weddings",
                  "as a quick weekday supper"],
            side=["with dark bread", "with pickled cucumbers", "with a green salad", "with boiled eggs",
                  "with a glass of buttermilk"])


def _en_dish(rng):
    g = {k: rng.choice(v) for k, v in DISH.items() if k != "ing"}
    i1, i2, i3, i4 = rng.sample(DISH["ing"], 4)
    name = rng.choice(EN_SYL1) + rng.choice(["eka", "otte", "anka", "elle", "iro"])
    prov = rng.choice(EN_SYL1) + rng.choice(EN_PROV)
    return (f"{name} is an invented dish from the {rng.choice(TOWN['dir'])} of {prov}, made by {g['method']} "
            f"{g['main']} with {i1} and {i2}. It is usually served {g['when']}, {g['side']}. Every family has its own "
            f"version: some add {i3}, while others prefer a handful of {i4}. "
            + rng.choice(["Cooks say it tastes even better the next day.",
                          "It is cheap to make and feeds a crowd.",
                          "Travellers often ask for the recipe before they leave."]))


ZH_C1 = ["青", "石", "安", "平", "清", "白", "云", "松", "桂", "梅", "柳", "金", "龙", "凤", "桃", "杏"]
ZH_C2 = ["溪", "山", "河", "岭", "湾", "桥", "塘", "坪", "湖", "林"]
ZH_TOWN = dict(
    origin=["一个渡口", "一座水磨坊", "一个小渔港", "一个驿站", "一口盐井", "一个集市"],
    ind1=["织布", "打鱼", "采石", "种茶", "烧制陶器", "晒盐", "种果树"],
    ind2=["旅游业", "食品加工", "学校和医院的工作", "家具制造", "物流运输", "电子商务"],
    landmark=["老石桥", "钟楼", "旧磨坊", "古戏台", "灯塔", "图书馆"],
    lm_note=["现在改成了一座小博物馆", "常常出现在当地的明信片上", "在一次洪水后重新修缮", "至今仍在使用"],
    fest=["灯笼", "桃花", "龙舟", "丰收", "风筝", "音乐"],
    fest_note=["主街禁止车辆通行，摆满了小吃摊", "周边村子的乐队都会来表演", "游客多得让小镇人口翻了一倍",
               "孩子们会在广场上游行"],
    dir=["北部", "南部", "东部", "西部", "山区", "沿海地区"],
)


def _zh_place(rng):
    return rng.choice(ZH_C1) + rng.choice(ZH_C2)


def _zh_town(rng):
    return _zh_town_facts(rng)[0]


def _zh_town_facts(rng):
    g = {k: rng.choice(v) for k, v in ZH_TOWN.items()}
    t, t2, prov, river = _zh_place(rng) + "镇", _zh_place(rng) + "市", _zh_place(rng) + "省", _zh_place(rng) + "河"
    year = rng.randint(1300, 1900)
    parts = [f"{t}是虚构的{prov}{g['dir']}的一个小镇，坐落在{river}{rng.choice('东西南北')}岸。",
             f"小镇始建于{year}年，最初只是{g['origin']}，很长一段时间里，当地人主要以{g['ind1']}为生。",
             f"如今镇上约有{rng.randint(12, 480) * 100}人，许多人从事{g['ind2']}，也有人每天到附近的{t2}上班。"]
    extras = [f"镇上最有名的建筑是{g['landmark']}，建于{year + rng.randint(20, 160)}年，{g['lm_note']}。",
              f"每年{rng.randint(1, 12)}月，小镇都会举办{g['fest']}节，届时{g['fest_note']}。"]
    g.update(town=t, province=prov, year=year)
    return "".join(parts + rng.sample(extras, rng.randint(1, 2))), g


ZH_SURNAMES = ["王", "李", "张", "刘", "陈", "杨", "赵", "黄", "周", "吴", "徐", "孙", "胡", "朱", "高", "林"]
ZH_GIVEN = [("明远", "他"), ("静怡", "她"), ("志强", "他"), ("雨桐", "她"), ("建华", "他"), ("晓燕", "她"),
            ("文博", "他"), ("思琪", "她"), ("若兰", "她"), ("国栋", "他")]
ZH_PROFESSIONS = [("植物学家", "植物学", "沿着北方海岸采集苔藓", "一本关于{P}苔藓的野外图鉴"),
                  ("工程师", "数学", "为山村设计小型桥梁", "一本介绍用本地石材造桥的手册"),
                  ("作曲家", "音乐", "在乡村学校教钢琴", "一组以{R}为题的十二首歌曲"),
                  ("地图测绘师", "地理", "徒步测量{P}的山谷", "{P}第一张详细地图"),
                  ("天文学家", "物理", "在山顶小屋观测变星", "一份收录四百颗变星的星表"),
                  ("医生", "医学", "为农民开设诊所", "一本关于农村饮水卫生的小册子")]


def _zh_person(rng):
    given, pron = rng.choice(ZH_GIVEN)
    name = rng.choice(ZH_SURNAMES) + given
    prof, subj, act, ach = rng.choice(ZH_PROFESSIONS)
    prov, river = _zh_place(rng) + "省", _zh_place(rng) + "河"
    y1 = rng.randint(1800, 1930)
    y2 = y1 + rng.randint(48, 90)
    later = rng.choice(["回到家乡教书", "把自己的藏书捐给了镇图书馆", "继续整理多年的笔记", "在花园里种了许多果树"])
    return (f"{name}（{y1}—{y2}）是一位为示例虚构的{prof}，出生于{_zh_place(rng)}镇。{pron}早年在{_zh_place(rng)}市学习"
            f"{subj}，之后用{zh_num(rng.randint(6, 25))}年时间{act.format(P=prov)}。{pron}最为人熟知的成就是"
            f"{y1 + rng.randint(28, 45)}年完成的{ach.format(P=prov, R=river)}。晚年，{pron}{later}。")


ZH_SPECIES = [("鸟", ["雀", "鸫", "莺"], "厘米", (9, 35), ["河边的芦苇丛", "高山草甸", "海边的悬崖", "古老的橡树林"],
               ["草籽和小甲虫", "浆果和毛虫", "空中飞行的昆虫"], "每年春天产下三到五枚带斑点的蛋"),
              ("甲虫", ["甲", "象鼻虫"], "毫米", (4, 40), ["林地上腐烂的树干", "沙丘", "桦树的树皮下"],
               ["腐烂的木头", "花粉和花蜜", "野蔷薇的叶子"], "幼虫在地下生活长达两年"),
              ("鱼", ["鳍鱼", "鳅"], "厘米", (4, 60), ["寒冷的山间溪流", "沙底的浅湖", "水流湍急的砾石河床"],
               ["水生昆虫的幼虫", "小型甲壳动物", "石头上的藻类"], "春末在砾石上产卵，雄鱼会守护鱼卵直到孵化"),
              ("蛙", ["树蛙", "蛙"], "厘米", (2, 9), ["被水淹没的草地", "瀑布附近潮湿的森林", "稻田"],
               ["苍蝇和蚊子", "小蜘蛛", "蚂蚁和甲虫"], "大雨过后在水中产下成团的卵")]
ZH_COLOURS = ["金", "红", "蓝", "绿", "琥珀", "银", "紫", "铜"]
ZH_PARTS = ["冠", "尾", "背", "斑", "纹", "顶"]


def _zh_species(rng):
    kind, names, unit, (lo, hi), habitats, foods, breed = rng.choice(ZH_SPECIES)
    name = rng.choice(ZH_COLOURS) + rng.choice(ZH_PARTS) + rng.choice(names)
    return (f"{name}是一种为示例虚构的{kind}，生活在{rng.choice(habitats)}，体长约{rng.randint(lo, hi)}{unit}。"
            f"它主要以{rng.choice(foods)}为食，{breed}。"
            + rng.choice([f"由于栖息地不断缩小，{name}常被用来作为讲解生态保护的例子。",
                          f"{name}体型不大，很容易被忽视，却是当地食物网中的一环。",
                          f"当地的自然爱好者每年都会统计{name}的数量。"]))


def make_c4() -> list[dict]:
    rng = rng_for("c4_demo")
    texts = [_en_town(rng) for _ in range(90)] + [_en_species(rng) for _ in range(70)]
    texts += [_en_person(rng) for _ in range(50)] + [_en_dish(rng) for _ in range(40)]
    for c, expl, ex in CONCEPTS_EN:
        texts.append(f"{expl} For example, {ex} " + rng.choice([
            f"Understanding {c} helps explain many things we see every day.",
            f"Teachers often introduce {c} with simple experiments or stories.",
            f"The idea of {c} appears in many school textbooks."]))
    for topic, tips in TIPS_EN:
        a, b, c = rng.sample(tips, 3)
        texts.append(f"Advice on {topic} usually starts with a few simple habits. {a} {b} {c} None of these steps is "
                     f"difficult on its own, but together they make a noticeable difference.")
    for cont in ["Europe", "Asia", "Africa", "North America", "South America", "Oceania"]:
        items = [f"{cap(c)} has its capital in {capital}" for c, capital, ct, *_ in COUNTRIES if ct == cont]
        texts.append(f"{cont} is home to many countries, each with its own capital city. "
                     + "; ".join(items) + ". Capitals are usually where the national government meets.")
    texts += [_zh_town(rng) for _ in range(40)] + [_zh_person(rng) for _ in range(25)]
    texts += [_zh_species(rng) for _ in range(20)]
    for c, expl, ex in CONCEPTS_ZH:
        texts.append(f"{expl}举个例子，{ex}")
    for topic, tips in TIPS_ZH:
        texts.append(f"说到{topic}，有几条简单的建议：" + "".join(rng.sample(tips, 3)) + "这些做法并不难，坚持下去就会看到变化。")
    seen, out = set(), []
    for t in texts:
        if t not in seen:
            seen.add(t)
            out.append({"text": t})
    rng.shuffle(out)
    return out


# ------------------------------------------------------------------------------------------------ preference
POLITE_EN = ["I hope this helps!", "Let me know if you have any other questions.", "Happy to help with anything else.",
             "Feel free to ask if anything is unclear."]
RUDE_EN = ["Look it up yourself. I'm not a search engine.", "That's a silly question. Figure it out.",
           "Do I have to do everything for you?", "I don't have time for this.",
           "Seriously? Everyone knows that. Go away."]
OFFTOPIC_EN = ["Did you know octopuses have three hearts? That's far more interesting.",
               "I'd rather talk about football. Did you see the match last night?",
               "Bananas are technically berries, which is much more fun to think about.",
               "My favourite colour is green, by the way.",
               "Let's talk about the weather instead. It's been quite windy lately."]


def make_dpo_en(arith_avoid: set) -> list[dict]:
    """Alpaca-style preference pairs: chosen is correct and polite; rejected is wrong, rude or off-topic."""
    rng = rng_for("dpo_en_demo")
    rows = []

    def add(prompt, chosen, wrong, inp=""):
        kind = rng.choice(["wrong", "rude", "offtopic"])
        rejected = {"wrong": wrong, "rude": rng.choice(RUDE_EN), "offtopic": rng.choice(OFFTOPIC_EN)}[kind]
        rows.append({"instruction": prompt, "input": inp, "chosen": chosen, "rejected": rejected})

    for c, capital, *_ in COUNTRIES:
        other = rng.choice([x[1] for x in COUNTRIES if x[1] != capital])
        add(f"What is the capital of {c}?", f"The capital of {c} is {capital}. {rng.choice(POLITE_EN)}",
            f"The capital of {c} is {other}. Obviously.")
    for op, a, b, r in fresh_arith(rng, arith_avoid, 50):
        off = rng.choice([-10, -2, -1, 1, 2, 10])
        add(f"What is {a} {op} {b}?", f"{a} {op} {b} = {r}. {rng.choice(POLITE_EN)}", f"It's {r + off}. Next question.")
    for i, (c, expl, ex) in enumerate(CONCEPTS_EN):
        other = CONCEPTS_EN[(i + 1 + rng.randrange(len(CONCEPTS_EN) - 1)) % len(CONCEPTS_EN)][1]
        add(f"Can you explain {c}?", f"Of course! {expl} For example, {ex}", other)
    for i, (topic, tips) in enumerate(TIPS_EN):
        chosen = "\n".join(f"{k + 1}. {t}" for k, t in enumerate(rng.sample(tips, 3)))
        other = TIPS_EN[(i + 1 + rng.randrange(len(TIPS_EN) - 1)) % len(TIPS_EN)][1]
        add(f"Can you give me some tips for {topic}?", f"Sure! Here are three tips for {topic}:\n{chosen}\nGood luck!",
            " ".join(rng.sample(other, 2)))
    for (big, small, f), v in conversions(rng, UNITS_EN, 20):
        add(f"How many {small} are in {v} {big}?",
            f"There are {v * f} {small} in {v} {big}, because 1 {SINGULAR[big]} is {f} {small}. "
            f"{rng.choice(POLITE_EN)}", f"{v * f + rng.choice([-f, f, 10])} {small}. Whatever.")
    for thing, detail in THANKS:
        for who, greeting in rng.sample(RECIPIENTS, 2):
            add(f"Write a short thank-you note to my {who} for {thing}.",
                f"Dear {greeting},\n\nThank you so much for {thing}. {detail} I really appreciate your kindness.\n\n"
                f"Warm wishes,\n[Your name]", "thx for the stuff. whatever.")
    for w in rng.sample(WORDS, 16):
        letter = rng.choice(w)
        n = w.count(letter)
        add(f"How many times does the letter \"{letter}\" appear in \"{w}\"?",
            f"The letter \"{letter}\" appears {n} {'time' if n == 1 else 'times'} in \"{w}\". {rng.choice(POLITE_EN)}",
            f"{n + rng.choice([1, 2])}. Count it yourself next time.")
    rng.shuffle(rows)
    return rows


POLITE_ZH = ["希望对您有帮助！", "如果还有其他问题，欢迎继续问我。", "有需要随时告诉我。", "祝您一切顺利！"]
RUDE_ZH = ["这种问题自己去查，别来烦我。", "你连这个都不知道？懒得回答。", "问这么简单的问题，浪费我的时间。", "自己想去吧。",
           "不知道，也不想知道。"]
OFFTOPIC_ZH = ["说起来，我昨天看了一场球赛，特别精彩。", "今天天气不错，适合出去吃火锅。", "你知道章鱼有三颗心脏吗？我更想聊这个。",
               "我们还是聊聊最近的电视剧吧。"]
SYSTEMS_ZH = ["你是一个乐于助人的助手。", "你是一位耐心、礼貌的AI助手，回答要准确。", "请用简洁的中文回答用户的问题。"]


def make_dpo_zh(arith_avoid: set) -> list[dict]:
    """ShareGPT-style preference pairs; some start with a system turn, some carry an earlier exchange."""
    rng = rng_for("dpo_zh_demo")
    rows = []

    def add(prompt, chosen, wrong):
        conv = []
        if rng.random() < 0.3:
            conv.append(sg("system", rng.choice(SYSTEMS_ZH)))
        if rng.random() < 0.25:
            conv += [sg("human", rng.choice(["你好", "在吗？", "你好，我想问个问题。"])),
                     sg("gpt", rng.choice(["你好！请问有什么可以帮您？", "在的，请说。", "当然可以，请问吧。"]))]
        conv.append(sg("human", prompt))
        kind = rng.choice(["wrong", "rude", "offtopic"])
        rejected = {"wrong": wrong, "rude": rng.choice(RUDE_ZH), "offtopic": rng.choice(OFFTOPIC_ZH)}[kind]
        rows.append({"conversations": conv, "chosen": sg("gpt", chosen), "rejected": sg("gpt", rejected)})

    for *_, zc, zcap, _ in COUNTRIES:
        other = rng.choice([x[4] for x in COUNTRIES if x[4] != zcap])
        add(f"{zc}的首都是哪里？", f"{zc}的首都是{zcap}。{rng.choice(POLITE_ZH)}", f"{zc}的首都是{other}，这还用问？")
    for op, a, b, r in fresh_arith(rng, arith_avoid, 40):
        add(f"{a} {op} {b} 等于多少？", f"{a} {op} {b} = {r}。{rng.choice(POLITE_ZH)}",
            f"等于{r + rng.choice([-10, -1, 1, 2, 10])}，下一个。")
    for i, (c, expl, ex) in enumerate(CONCEPTS_ZH):
        other = CONCEPTS_ZH[(i + 1 + rng.randrange(len(CONCEPTS_ZH) - 1)) % len(CONCEPTS_ZH)][1]
        add(f"能给我讲讲什么是{c}吗？", f"当然可以！{expl}举个例子：{ex}", other)
    for i, (topic, tips) in enumerate(TIPS_ZH):
        for _ in range(2):
            body = "\n".join(f"{k + 1}. {t}" for k, t in enumerate(rng.sample(tips, 3)))
            other = TIPS_ZH[(i + 1 + rng.randrange(len(TIPS_ZH) - 1)) % len(TIPS_ZH)][1]
            add(f"关于{topic}，你有什么建议？", f"好的，这里有三条建议：\n{body}\n祝你顺利！", "".join(rng.sample(other, 2)))
    for (big, small, f), v in conversions(rng, UNITS_ZH, 20):
        add(f"{v}{big}是多少{small}？", f"{v}{big}等于{v * f}{small}，因为1{big}等于{f}{small}。{rng.choice(POLITE_ZH)}",
            f"{v * f + rng.choice([-f, f, 10])}{small}吧，差不多。")
    for w, o in rng.sample(ANTONYMS_ZH, 20):
        wrong = rng.choice([x for x, _ in ANTONYMS_ZH if x != w])
        add(f"“{w}”的反义词是什么？", f"“{w}”的反义词是“{o}”。{rng.choice(POLITE_ZH)}", f"是“{wrong}”。")
    rng.shuffle(rows)
    return rows


def make_kto_en(arith_avoid: set) -> list[dict]:
    """KTO data: single answers, each labelled desirable (true) or undesirable (false), in the messages format
    (role / content) with a boolean `label`. Unpaired on purpose: a prompt gets one answer, good or bad; about
    55 % are good, so the two kinds are close to balanced without being equal."""
    rng = rng_for("kto_en_demo")
    rows = []

    def add(prompt, good, wrong):
        label = rng.random() < 0.55
        if label:
            answer = good
        else:
            kind = rng.choice(["wrong", "wrong", "rude", "offtopic"])
            answer = {"wrong": wrong, "rude": rng.choice(RUDE_EN), "offtopic": rng.choice(OFFTOPIC_EN)}[kind]
        rows.append({"messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}],
                     "label": label})

    for c, capital, cont, *_ in COUNTRIES:
        other = rng.choice([x[1] for x in COUNTRIES if x[1] != capital])
        add(f"Which city is the capital of {c}?", f"{capital} is the capital of {c}, in {cont}.",
            f"That would be {other}.")
    for op, a, b, r in fresh_arith(rng, arith_avoid, 50):
        add(f"Please work out {a} {op} {b}.", f"{a} {op} {b} equals {r}. {rng.choice(POLITE_EN)}",
            f"{a} {op} {b} equals {r + rng.choice([-3, -1, 1, 5])}.")
    for i, (c, expl, ex) in enumerate(CONCEPTS_EN):
        other = CONCEPTS_EN[(i + 1 + rng.randrange(len(CONCEPTS_EN) - 1)) % len(CONCEPTS_EN)][1]
        add(f"What is {c}, in a few sentences?", f"{expl} A simple example: {ex}", other)
    for (big, small, f), v in conversions(rng, UNITS_EN, 20):
        add(f"Convert {v} {big} to {small}.", f"{v} {big} is {v * f} {small} (1 {SINGULAR[big]} = {f} {small}).",
            f"About {v * f + rng.choice([-f, f, 7])} {small}.")
    for w in rng.sample(WORDS, 20):
        add(f"Spell the word \"{w}\" backwards.", f"\"{w}\" backwards is \"{w[::-1]}\".",
            f"\"{w}\" backwards is \"{w[::-1][1:] + w[-1]}\".")
    rng.shuffle(rows)
    return rows


# ----------------------------------------------------------------------------------------- multi-turn chats
SYSTEMS_EN = ["You are a helpful assistant.", "You are a friendly tutor who explains things clearly.",
              "You are a concise assistant. Keep answers short."]
THANKS_EN = ["Thanks!", "Thank you, that helps.", "Great, thanks."]
WELCOME_EN = ["You're welcome! Ask me anytime.", "Glad it helped! Let me know if you have more questions.",
              "My pleasure. Anything else I can do for you?"]
THANKS_ZH = ["谢谢！", "明白了，谢谢你。", "好的，多谢。"]
WELCOME_ZH = ["不客气！有问题随时问我。", "很高兴能帮上忙！还有其他问题吗？", "不用谢，祝你一天愉快！"]


def _chat_en(rng, kind, arith_avoid):
    """One conversation as (human, gpt) pairs."""
    if kind == "capital":
        c, capital, cont, *_ = rng.choice(COUNTRIES)
        return [(f"What is the capital of {c}?", f"The capital of {c} is {capital}."),
                (f"Which continent is {c} in?", f"{cap(c)} is in {cont}.")]
    if kind == "arith":
        (_, a, b, s), = fresh_arith(rng, arith_avoid, 1)
        while _ != "+":
            (_, a, b, s), = fresh_arith(rng, arith_avoid, 1)
        k, m = rng.randint(2, 5), rng.randint(1, 20)
        return [(f"What is {a} + {b}?", f"{a} + {b} = {s}."),
                (f"And if I multiply that by {k}?", f"{s} × {k} = {s * k}."),
                (f"Now subtract {m}.", f"{s * k} - {m} = {s * k - m}.")]
    if kind == "concept":
        c, expl, ex = rng.choice(CONCEPTS_EN)
        return [(f"What is {c}?", expl), ("Can you give me an example?", f"Sure. For example, {ex}")]
    if kind == "tips":
        topic, tips = rng.choice(TIPS_EN)
        t1, t2, t3 = rng.sample(tips, 3)
        return [(f"Can you give me a tip for {topic}?", f"Here is one: {t1}"), ("Another one, please.", t2),
                ("One more?", f"Of course: {t3}")]
    ws = rng.sample(WORDS, 5)
    return [(f"Sort these words alphabetically: {', '.join(ws)}", ", ".join(sorted(ws))),
            ("Now put them in reverse order.", ", ".join(sorted(ws, reverse=True)))]


def _chat_zh(rng, kind, arith_avoid):
    if kind == "capital":
        *_, zc, zcap, zcont = rng.choice(COUNTRIES)
        return [(f"{zc}的首都是哪里？", f"{zc}的首都是{zcap}。"), (f"{zc}在哪个大洲？", f"{zc}位于{zcont}。")]
    if kind == "arith":
        (op, a, b, s), = fresh_arith(rng, arith_avoid, 1)
        k = rng.randint(2, 5)
        return [(f"{a} {op} {b} 等于多少？", f"{a} {op} {b} = {s}。"), (f"再乘以{k}呢？", f"{s} × {k} = {s * k}。")]
    if kind == "concept":
        c, expl, ex = rng.choice(CONCEPTS_ZH)
        return [(f"什么是{c}？", expl), ("能举个例子吗？", f"当然。{ex}")]
    if kind == "tips":
        topic, tips = rng.choice(TIPS_ZH)
        t1, t2, t3 = rng.sample(tips, 3)
        return [(f"关于{topic}，给我一条建议吧。", f"可以试试这一条：{t1}"), ("还有吗？", t2), ("再来一条。", f"好的：{t3}")]
    pairs = rng.sample(ANTONYMS_ZH, 2)
    return [(f"“{pairs[0][0]}”的反义词是什么？", f"“{pairs[0][0]}”的反义词是“{pairs[0][1]}”。"),
            (f"那“{pairs[1][0]}”呢？", f"“{pairs[1][0]}”的反义词是“{pairs[1][1]}”。")]


def _conversation(rng, lang, arith_avoid):
    kinds = ["capital", "arith", "concept", "tips", "words"]
    kind = rng.choice(kinds)
    turns = (_chat_en if lang == "en" else _chat_zh)(rng, kind, arith_avoid)
    if len(turns) < 4 and rng.random() < 0.4:
        turns.append((rng.choice(THANKS_EN), rng.choice(WELCOME_EN)) if lang == "en"
                     else (rng.choice(THANKS_ZH), rng.choice(WELCOME_ZH)))
    system = None
    if rng.random() < 0.35:
        if lang == "zh":
            system = rng.choice(SYSTEMS_ZH)
        else:  # the concise prompt only where the answers are short
            system = rng.choice(SYSTEMS_EN if kind in ("capital", "arith", "words") else SYSTEMS_EN[:2])
    return system, turns


def make_sharegpt(arith_avoid: set) -> list[dict]:
    rng = rng_for("sharegpt_demo")
    rows, seen = [], set()
    for lang, n in (("en", 90), ("zh", 60)):
        got = 0
        while got < n:
            system, turns = _conversation(rng, lang, arith_avoid)
            conv = ([sg("system", system)] if system else []) + [m for h, g in turns
                                                                 for m in (sg("human", h), sg("gpt", g))]
            key = json.dumps(conv, ensure_ascii=False)
            if key in seen:
                continue
            seen.add(key)
            rows.append({"conversations": conv})
            got += 1
    rng.shuffle(rows)
    return rows


def make_messages(arith_avoid: set) -> list[dict]:
    rng = rng_for("messages_demo")
    rows, seen = [], set()
    while len(rows) < 50:
        lang = "en" if len(rows) % 5 < 3 else "zh"
        system, turns = _conversation(rng, lang, arith_avoid)
        turns = turns[: rng.randint(1, 2)]
        msgs = ([{"role": "system", "content": system}] if system else []) + [
            m for u, a in turns for m in ({"role": "user", "content": u}, {"role": "assistant", "content": a})]
        key = json.dumps(msgs, ensure_ascii=False)
        if key in seen:
            continue
        seen.add(key)
        rows.append({"messages": msgs})
    return rows


# ------------------------------------------------------------------------------------------------- tool calling
# LLaMA-Factory's glaive_toolcall schema: `conversations` with function_call / observation turns, `tools` as JSON text.
TOOL_SPECS = {
    "get_weather": {"name": "get_weather", "description": "Current weather in a city.",
                    "parameters": {"type": "object", "properties": {
                        "city": {"type": "string", "description": "City name"},
                        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}}, "required": ["city"]}},
    "convert_currency": {"name": "convert_currency", "description": "Convert an amount of money between currencies.",
                         "parameters": {"type": "object", "properties": {
                             "amount": {"type": "number"}, "from_currency": {"type": "string"},
                             "to_currency": {"type": "string"}},
                             "required": ["amount", "from_currency", "to_currency"]}},
    "get_local_time": {"name": "get_local_time", "description": "The local time in a city.",
                       "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                                      "required": ["city"]}},
}
SKIES = ["sunny", "cloudy", "rainy", "windy", "foggy", "snowy"]
CURRENCIES = [("USD", "dollars"), ("EUR", "euros"), ("GBP", "pounds"), ("JPY", "yen"), ("CHF", "francs")]
RATES = {"USD": 1.0, "EUR": 0.9, "GBP": 0.8, "JPY": 150.0, "CHF": 0.88}


def _tc(name: str, **arguments) -> str:
    return json.dumps({"name": name, "arguments": arguments}, ensure_ascii=False)


def _tool_turns(rng: random.Random, kind: str) -> list[dict]:
    if kind == "weather":
        city = rng.choice(COUNTRIES)[1]
        temp, sky = rng.randint(-5, 35), rng.choice(SKIES)
        unit = rng.choice(["celsius", "fahrenheit"]) if rng.random() < 0.3 else None
        shown = temp if unit != "fahrenheit" else round(temp * 9 / 5 + 32)
        sign = "°F" if unit == "fahrenheit" else "°C"
        args = {"city": city, **({"unit": unit} if unit else {})}
        ask = rng.choice([f"What's the weather like in {city}?", f"Is it warm in {city} right now?",
                          f"How is the weather in {city} today?"])
        return [sg("human", ask), sg("function_call", _tc("get_weather", **args)),
                sg("observation", json.dumps({"city": city, "temperature": shown, "unit": unit or "celsius",
                                              "sky": sky})),
                sg("gpt", f"It is {shown}{sign} and {sky} in {city} right now.")]
    if kind == "currency":
        (a, an), (b, bn) = rng.sample(CURRENCIES, 2)
        amount = rng.choice([5, 10, 20, 50, 100, 250, 1000])
        result = round(amount / RATES[a] * RATES[b], 2)
        return [sg("human", f"How many {bn} is {amount} {an}?"),
                sg("function_call", _tc("convert_currency", amount=amount, from_currency=a, to_currency=b)),
                sg("observation", json.dumps({"amount": result, "currency": b})),
                sg("gpt", f"{amount} {a} is about {result:g} {b}.")]
    if kind == "two_cities":  # two calls in one turn (a JSON list), one observation with both results
        c1, c2 = [c[1] for c in rng.sample(COUNTRIES, 2)]
        h1, h2 = rng.randint(0, 23), rng.randint(0, 23)
        calls = json.dumps([{"name": "get_local_time", "arguments": {"city": c1}},
                            {"name": "get_local_time", "arguments": {"city": c2}}])
        return [sg("human", f"What time is it in {c1} and in {c2}?"), sg("function_call", calls),
                sg("observation", json.dumps([{"city": c1, "time": f"{h1:02d}:00"}, {"city": c2, "time": f"{h2:02d}:00"}])),
                sg("gpt", f"It is {h1:02d}:00 in {c1} and {h2:02d}:00 in {c2}.")]
    c, capital, *_ = rng.choice(COUNTRIES)  # no tool needed: a plain answer with tools available
    return [sg("human", f"What is the capital of {c}?"), sg("gpt", f"The capital of {c} is {capital}.")]


def make_toolcall() -> list[dict]:
    rng = rng_for("toolcall_demo")
    rows, seen = [], set()
    kinds = ["weather", "weather", "currency", "two_cities", "plain"]
    while len(rows) < 60:
        kind = kinds[len(rows) % len(kinds)]
        conv = _tool_turns(rng, kind)
        names = {"weather": ["get_weather"], "currency": ["convert_currency"], "two_cities": ["get_local_time"],
                 "plain": []}[kind]
        extra = [n for n in TOOL_SPECS if n not in names]
        names = names + rng.sample(extra, rng.randint(0 if names else 1, len(extra)))
        key = json.dumps(conv, ensure_ascii=False)
        if key in seen:
            continue
        seen.add(key)
        rows.append({"conversations": conv, "tools": json.dumps([TOOL_SPECS[n] for n in names], ensure_ascii=False)})
    return rows


# ------------------------------------------------------------------------------------------------ registry
ALPACA_COLUMNS = {"prompt": "instruction", "query": "input", "response": "output"}
SHAREGPT_TAGS = {"role_tag": "from", "content_tag": "value", "user_tag": "human", "assistant_tag": "gpt",
                 "system_tag": "system"}


def dataset_info() -> dict:
    sft = lambda f: {"file_name": f, "formatting": "alpaca", "columns": dict(ALPACA_COLUMNS)}  # noqa: E731
    return {
        "identity": sft("identity.json"),
        "alpaca_en_demo": sft("alpaca_en_demo.json"),
        "alpaca_zh_demo": sft("alpaca_zh_demo.json"),
        "sentiment_en_train": sft("sentiment_en_train.json"),
        "sentiment_en_test": sft("sentiment_en_test.json"),
        "nli_zh_train": sft("nli_zh_train.json"),
        "nli_zh_test": sft("nli_zh_test.json"),
        "arith_train": sft("arith_train.json"),
        "arith_test": sft("arith_test.json"),
        "arith_prompts": {"file_name": "arith_prompts.json", "formatting": "alpaca",
                          "columns": {"prompt": "question", "answer": "answer"}},
        "c4_demo": {"file_name": "c4_demo.jsonl", "columns": {"prompt": "text"}},
        "dpo_en_demo": {"file_name": "dpo_en_demo.json", "formatting": "alpaca", "ranking": True,
                        "columns": {"prompt": "instruction", "query": "input", "chosen": "chosen",
                                    "rejected": "rejected"}},
        "dpo_zh_demo": {"file_name": "dpo_zh_demo.json", "formatting": "sharegpt", "ranking": True,
                        "columns": {"messages": "conversations", "chosen": "chosen", "rejected": "rejected"},
                        "tags": dict(SHAREGPT_TAGS)},
        "sharegpt_demo": {"file_name": "sharegpt_demo.json", "formatting": "sharegpt",
                          "columns": {"messages": "conversations"}, "tags": dict(SHAREGPT_TAGS)},
        "toolcall_demo": {"file_name": "toolcall_demo.json", "formatting": "sharegpt",
                          "columns": {"messages": "conversations", "tools": "tools"},
                          "tags": {**SHAREGPT_TAGS, "observation_tag": "observation", "function_tag": "function_call"}},
        "messages_demo": {"file_name": "messages_demo.json", "formatting": "sharegpt",
                          "columns": {"messages": "messages"},
                          "tags": {"role_tag": "role", "content_tag": "content", "user_tag": "user",
                                   "assistant_tag": "assistant", "system_tag": "system"}},
        "kto_en_demo": {"file_name": "kto_en_demo.json", "formatting": "sharegpt",
                        "columns": {"messages": "messages", "kto_tag": "label"},
                        "tags": {"role_tag": "role", "content_tag": "content", "user_tag": "user",
                                 "assistant_tag": "assistant"}},
    }


def build() -> dict[str, object]:
    """file name -> rows (a list), for every dataset file plus dataset_info.json."""
    sent_train, sent_test, sent_extra = make_sentiment()
    nli_train, nli_test, nli_extra = make_nli()
    arith_train, arith_test, avoid = make_arith()
    # every later generator draws fresh problems and adds them to `avoid`, so none repeats a test problem
    return {
        "identity.json": make_identity(),
        "alpaca_en_demo.json": make_alpaca_en(sent_extra, avoid),
        "alpaca_zh_demo.json": make_alpaca_zh(nli_extra, avoid),
        "sentiment_en_train.json": sent_train,
        "sentiment_en_test.json": sent_test,
        "nli_zh_train.json": nli_train,
        "nli_zh_test.json": nli_test,
        "arith_train.json": arith_train,
        "arith_test.json": arith_test,
        "c4_demo.jsonl": make_c4(),
        "dpo_en_demo.json": make_dpo_en(avoid),
        "dpo_zh_demo.json": make_dpo_zh(avoid),
        "sharegpt_demo.json": make_sharegpt(avoid),
        "messages_demo.json": make_messages(avoid),
        "toolcall_demo.json": make_toolcall(),
        "kto_en_demo.json": make_kto_en(avoid),
        "arith_prompts.json": make_arith_prompts(avoid),
        "dataset_info.json": dataset_info(),
    }


def render(name: str, content) -> str:
    if name.endswith(".jsonl"):
        return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in content)
    return json.dumps(content, ensure_ascii=False, indent=2) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=HERE, help="folder to write into (default: next to this script)")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for name, content in build().items():
        (args.out / name).write_text(render(name, content), encoding="utf-8", newline="\n")
        if name != "dataset_info.json":
            print(f"{name:26s} {len(content):5d} rows")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
