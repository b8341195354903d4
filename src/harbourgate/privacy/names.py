"""Chinese surnames, for telling a name from ordinary words where context is weaker.

Common single surnames in simplified and traditional forms (together they cover the vast
majority of people in the mainland, Hong Kong, Macao and Taiwan), minus characters that are
far more often function words than surnames (和, 向, 于, 都, ...), and the compound surnames.
"""

from __future__ import annotations

SINGLE = frozenset(
    "王李张張刘劉陈陳杨楊黄黃赵趙吴吳周徐孙孫马馬朱胡郭何林罗羅高郑鄭梁谢謝宋唐许許韩韓"
    "冯馮邓鄧曹彭曾肖蕭田董袁潘蒋蔣蔡余杜叶葉程苏蘇魏吕呂丁任沈姚卢盧姜崔钟鍾鐘谭譚陆陸"
    "汪范範金石廖贾賈夏韦韋付傅方白邹鄒孟熊秦邱江尹薛闫閻段雷侯龙龍史陶黎贺賀顾顧毛郝龚"
    "龔邵万萬钱錢严嚴覃武戴莫孔汤湯常温溫康施文牛樊葛邢安齐齊易乔喬伍庞龐颜顏倪庄莊聂聶"
    "章鲁魯岳翟殷詹申欧歐耿关關兰蘭焦俞左柳甘祝包宁寧尚符舒阮柯纪紀梅童凌毕畢单單季裴霍"
    "涂成苗谷盛曲翁冉骆駱蓝藍路游辛靳管柴蒙鲍鮑华華喻祁蒲房滕屈饶饒解牟艾尤阳陽穆农農司"
    "卓古吉缪繆简簡车車项項连連麦麥褚娄婁窦竇戚岑景党黨宫宮费費卜冷晏席卫衛米柏宗瞿桂佟"
    "应應臧闵閔苟邬鄔边邊卞姬师師仇栾欒隋商刁沙荣榮巫寇桑郎甄丛叢仲虞敖巩鞏佘池查麻苑迟"
    "遲邝鄺官封谈談匡鞠惠荆荊冀郁胥班储儲栗燕楚鄢劳勞谌諶奚皮粟冼蔺藺楼樓闻聞厉厲伊仝郜"
    "阚闞权權强強帅帥屠豆朴盖蓋练練廉禹井祖漆巴丰豐卿狄计計索宣晋晉芮扈晁伏鹿薄邸雍辜羊"
    "乌烏裘亓邰赫杭况況鲜鮮逯茹诸諸戰慕嵇湛宾賓戎勾茅尉檀昝奉尧堯區区黃曹麥譚鄧霍"
    "丘乐凃塗洪萧賴赖阎闕阙龎粘鄞戈敬满盘芦留容宿浦隆"
)

_COMPOUND_TEXT = (
    "欧阳 歐陽 司马 司馬 上官 诸葛 諸葛 东方 東方 皇甫 尉迟 尉遲 公孙 公孫 慕容 令狐 宇文 "
    "长孙 長孫 司徒 夏侯 轩辕 軒轅 端木 独孤 獨孤 南宫 南宮 西门 西門 申屠 万俟 闻人 聞人 "
    "呼延 澹台 濮阳 濮陽 太史 宗政 东郭 東郭 張簡 张简 范姜"
)
COMPOUND = frozenset(_COMPOUND_TEXT.split(" "))

# Characters that start the word after a name in running text ("姓名：王伟电话…"), so a
# three-character run ending in one of them is a two-character name.
AFTER_NAME = frozenset("电電手身性地年出联聯邮郵住职職的是在先女小太医醫和与與及同今已")


def is_han(ch: str) -> bool:
    """A CJK unified ideograph (the block names use)."""
    return "\u4e00" <= ch <= "\u9fff"


def trim_chinese_name(run: str) -> str | None:
    """The name at the start of `run` (a run of Han characters after a name label).

    A compound surname takes up to two given-name characters; a single surname one or two,
    the second dropped when it reads as the start of the next word. None when the run does
    not start with a known surname.
    """
    if run[:2] in COMPOUND:
        return run[:4] if len(run) >= 4 and run[3] not in AFTER_NAME else run[:3]
    if run[:1] not in SINGLE or len(run) < 2:
        return None
    if len(run) >= 3 and run[2] not in AFTER_NAME:
        return run[:3]
    return run[:2]


def name_before(text: str, end: int) -> int | None:
    """Start of a Chinese name ending at `end` (before 先生, 女士, ...), or None.

    Looks back up to four characters for a compound surname, else up to three for a single
    surname, taking the longest that starts with a surname and is all Han characters.
    """
    han = 0  # Han characters just before `end`, up to four
    while han < 4 and han < end and "\u4e00" <= text[end - han - 1] <= "\u9fff":
        han += 1
    for size in (4, 3):
        if size <= han and text[end - size:end - size + 2] in COMPOUND:
            return end - size
    for size in (3, 2, 1):
        if size <= han:
            first = text[end - size]
            if first in SINGLE and not (size > 1 and first in AFTER_NAME):
                return end - size
    return None
