"""Generalisation tables: Hong Kong districts and mainland cities to coarser regions.

Hong Kong's 18 districts fall into its three traditional areas; mainland cities map to their
province, with the nine Greater Bay Area cities marked as such (the GBA standard contract
covers exactly them). Names are accepted in English, simplified and traditional Chinese.
"""

from __future__ import annotations

_HK: dict[str, tuple[str, ...]] = {
    "Hong Kong Island": (
        "Central and Western", "Central & Western", "中西區", "中西区", "Wan Chai", "灣仔", "湾仔",
        "Eastern", "東區", "东区", "Southern", "南區", "南区",
    ),
    "Kowloon": (
        "Yau Tsim Mong", "油尖旺", "Sham Shui Po", "深水埗", "Kowloon City", "九龍城", "九龙城",
        "Wong Tai Sin", "黃大仙", "黄大仙", "Kwun Tong", "觀塘", "观塘",
    ),
    "New Territories": (
        "Kwai Tsing", "葵青", "Tsuen Wan", "荃灣", "荃湾", "Tuen Mun", "屯門", "屯门",
        "Yuen Long", "元朗", "North", "北區", "北区", "Tai Po", "大埔", "Sha Tin", "沙田",
        "Sai Kung", "西貢", "西贡", "Islands", "離島", "离岛",
    ),
}

_GBA = (
    "Guangzhou", "广州", "廣州", "Shenzhen", "深圳", "Zhuhai", "珠海", "Foshan", "佛山",
    "Huizhou", "惠州", "Dongguan", "东莞", "東莞", "Zhongshan", "中山", "Jiangmen", "江门", "江門",
    "Zhaoqing", "肇庆", "肇慶",
)

_PROVINCES: dict[str, tuple[str, ...]] = {
    "Beijing": ("Beijing", "北京"),
    "Shanghai": ("Shanghai", "上海"),
    "Tianjin": ("Tianjin", "天津"),
    "Chongqing": ("Chongqing", "重庆", "重慶"),
    "Guangdong (outside GBA)": ("Shantou", "汕头", "汕頭", "Zhanjiang", "湛江", "Shaoguan", "韶关"),
    "Zhejiang": ("Hangzhou", "杭州", "Ningbo", "宁波", "寧波", "Wenzhou", "温州", "溫州"),
    "Jiangsu": ("Nanjing", "南京", "Suzhou", "苏州", "蘇州", "Wuxi", "无锡", "無錫"),
    "Fujian": ("Fuzhou", "福州", "Xiamen", "厦门", "廈門", "Quanzhou", "泉州"),
    "Sichuan": ("Chengdu", "成都"),
    "Hubei": ("Wuhan", "武汉", "武漢"),
    "Hunan": ("Changsha", "长沙", "長沙"),
    "Shaanxi": ("Xi'an", "Xian", "西安"),
    "Shandong": ("Jinan", "济南", "濟南", "Qingdao", "青岛", "青島"),
    "Henan": ("Zhengzhou", "郑州", "鄭州"),
    "Liaoning": ("Shenyang", "沈阳", "瀋陽", "Dalian", "大连", "大連"),
    "Anhui": ("Hefei", "合肥"),
    "Jiangxi": ("Nanchang", "南昌"),
    "Yunnan": ("Kunming", "昆明"),
    "Guangxi": ("Nanning", "南宁", "南寧"),
    "Hainan": ("Haikou", "海口", "Sanya", "三亚", "三亞"),
}


def _table() -> dict[str, str]:
    table: dict[str, str] = {}
    for region, names in _HK.items():
        for name in names:
            table[name.casefold()] = f"Hong Kong - {region}"
    for name in _GBA:
        table[name.casefold()] = "Guangdong (GBA)"
    for province, names in _PROVINCES.items():
        for name in names:
            table[name.casefold()] = province
    return table


REGIONS: dict[str, str] = _table()
UNKNOWN_REGION = "other"


def region_of(place: str) -> str:
    """The region of a Hong Kong district or mainland city, or ``"other"``.

    Trailing administrative suffixes (区/區/市/District) are ignored: ``"深圳市"`` is Shenzhen.
    """
    key = place.strip().casefold()
    if key in REGIONS:
        return REGIONS[key]
    for suffix in (" district", "区", "區", "市"):
        if key.endswith(suffix) and key[: -len(suffix)] in REGIONS:
            return REGIONS[key[: -len(suffix)]]
    return UNKNOWN_REGION
